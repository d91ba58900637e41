//! Certificates made by the test, for Redis over TLS: a private CA, a server certificate for
//! 127.0.0.1 that it signed, a client certificate for mutual TLS, and the certificates a
//! client must refuse (one signed by a CA nobody trusts, one naming another host). Each is a
//! PEM file in a fresh directory, removed when the value is dropped.
//!
//! [`RedisServer::start_tls`](crate::redis_server::RedisServer::start_tls) serves TLS with
//! one of the server certificates.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A private CA and the certificates the TLS tests need, as PEM files.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
    ca: PathBuf,
    server: CertFiles,
    client: CertFiles,
    stranger: CertFiles,
    misnamed: CertFiles,
    self_signed: CertFiles,
}

/// Distinguishes the directories of several sets made by one test process.
static SETS: AtomicU64 = AtomicU64::new(0);

impl TestCertificates {
    /// Makes a CA, and signed by it: a server certificate for `127.0.0.1` and `localhost`, a
    /// client certificate, and a server certificate that names only `elsewhere.invalid`;
    /// then a server certificate for `127.0.0.1` signed by a second CA that is not given
    /// out.
    pub fn new() -> TestCertificates {
        let dir = std::env::temp_dir().join(format!(
            "breaker-tls-{}-{}",
            std::process::id(),
            SETS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for the test certificates");
        let private_ca = ca("breaker test CA");
        let ca_file = write(&dir, "ca.pem", &private_ca.pem());
        let loopback = ["127.0.0.1", "localhost"];
        let server = leaf(&dir, "server", &loopback, Role::Server, &private_ca);
        let client = leaf(
            &dir,
            "client",
            &["breaker-client"],
            Role::Client,
            &private_ca,
        );
        let misnamed = leaf(
            &dir,
            "misnamed",
            &["elsewhere.invalid"],
            Role::Server,
            &private_ca,
        );
        let unknown = ca("a CA nobody trusts");
        let stranger = leaf(&dir, "stranger", &loopback, Role::Server, &unknown);
        let self_signed = self_signed_ca(&dir, &loopback);
        TestCertificates {
            dir,
            ca: ca_file,
            server,
            client,
            stranger,
            misnamed,
            self_signed,
        }
    }

    /// The private CA's certificate (PEM).
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The private CA's certificate, as bytes.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("read the test CA")
    }

    /// The server certificate for 127.0.0.1, signed by the private CA.
    pub fn server(&self) -> &CertFiles {
        &self.server
    }

    /// A client certificate signed by the private CA, for mutual TLS.
    pub fn client(&self) -> &CertFiles {
        &self.client
    }

    /// A server certificate for 127.0.0.1 signed by a CA that no client trusts.
    pub fn stranger(&self) -> &CertFiles {
        &self.stranger
    }

    /// A server certificate signed by the private CA that names `elsewhere.invalid` only.
    pub fn misnamed(&self) -> &CertFiles {
        &self.misnamed
    }

    /// A self-signed server certificate for 127.0.0.1 that is also a CA certificate
    /// (`basicConstraints CA:TRUE`, as `openssl req -x509` makes by default): what an
    /// operator may give a Redis and then its clients as their CA.
    pub fn self_signed(&self) -> &CertFiles {
        &self.self_signed
    }
}

impl Default for TestCertificates {
    fn default() -> TestCertificates {
        TestCertificates::new()
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy)]
enum Role {
    Server,
    Client,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("a self-signed CA")
}

fn self_signed_ca(dir: &Path, names: &[&str]) -> CertFiles {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("certificate parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    let key = KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    CertFiles {
        cert: write(dir, "self-signed.pem", &cert.pem()),
        key: write(dir, "self-signed.key", &key.serialize_pem()),
    }
}

fn leaf(
    dir: &Path,
    name: &str,
    names: &[&str],
    role: Role,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> CertFiles {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // A server certificate is a client one too: cluster nodes and replicas present theirs
    // when they connect to each other over TLS.
    params.extended_key_usages = match role {
        Role::Server => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let key = KeyPair::generate().expect("a key");
    let cert = params
        .signed_by(&key, issuer)
        .expect("a signed certificate");
    CertFiles {
        cert: write(dir, &format!("{name}.pem"), &cert.pem()),
        key: write(dir, &format!("{name}.key"), &key.serialize_pem()),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write a test certificate");
    path
}
