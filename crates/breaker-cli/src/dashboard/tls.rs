//! HTTPS for the dashboard: the rustls settings the server's handshakes use. Each handshake
//! runs in its connection's own task, within the server's header-read timeout and counted
//! against its cap on connections (`breaker_dashboard::Server::serve_with_handshake`).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server's TLS settings: the certificate chain in `cert` (PEM, the server's own
/// certificate first) and its private key in `key` (PEM: PKCS #8, PKCS #1 or SEC 1).
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read the certificate {}: {err}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate (a PEM file with a CERTIFICATE block)",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("cannot read the private key {}: {err}", key.display()))?;
    // The provider is named rather than taken from the process: rustls cannot pick one by
    // itself when its dependencies enable more than one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|err| {
            format!(
                "{} and {} do not make a usable certificate: {err}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
