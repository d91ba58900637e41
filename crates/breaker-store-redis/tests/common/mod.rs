//! Reading and writing one value of a breaker's packed state (the hash fields `s` and `x`),
//! for tests that look at replicas or corrupt the state on purpose. The layout is the one
//! `breaker.lua` declares (its `HOT` and `COLD` lines), read from the script itself.
#![allow(dead_code)]

const SCRIPT: &str = include_str!("../../src/breaker.lua");

/// `{field, format, {names...}}` of one line `local NAME, NAME_BYTES = 'format', n -- field: names`.
fn layout(name: &str) -> String {
    let line = SCRIPT
        .lines()
        .find(|line| line.starts_with(&format!("local {name}, {name}_BYTES = '")))
        .unwrap_or_else(|| panic!("breaker.lua declares {name}"));
    let format = line.split('\'').nth(1).expect("a format");
    let (field, names) = line
        .split_once(" -- ")
        .and_then(|(_, comment)| comment.split_once(": "))
        .expect("the field and its names");
    let names: Vec<String> = names.split(' ').map(|name| format!("'{name}'")).collect();
    format!("{{'{field}', '{format}', {{{}}}}}", names.join(", "))
}

/// A script for `EVAL_RO` (read: `ARGV[1]` names the value) and `EVAL` (write: `ARGV[2]` is
/// the new value) on `KEYS[1]`, a breaker's hash. `st` and `ov` are parts of `flags`.
pub(crate) fn state_script() -> String {
    format!(
        r#"
local layouts = {{{hot}, {cold}}}
for _, layout in ipairs(layouts) do
  for i, name in ipairs(layout[3]) do
    if ARGV[1] == name or (name == 'flags' and (ARGV[1] == 'st' or ARGV[1] == 'ov')) then
      local raw = redis.call('HGET', KEYS[1], layout[1])
      if not raw then return false end
      local values = {{struct.unpack(layout[2], raw)}}
      local value = values[i]
      local st, ov = value % 4, math.floor(value / 4) % 4
      if ARGV[1] == 'st' then value = st elseif ARGV[1] == 'ov' then value = ov end
      if ARGV[2] then
        local new = tonumber(ARGV[2])
        if ARGV[1] == 'st' then new = values[i] - st + new end
        if ARGV[1] == 'ov' then new = values[i] - 4 * ov + 4 * new end
        values[i] = new
        redis.call('HSET', KEYS[1], layout[1],
          struct.pack(layout[2], unpack(values, 1, #layout[3])))
      end
      return string.format('%d', value)
    end
  end
end
return redis.error_reply('no value named ' .. ARGV[1])
"#,
        hot = layout("HOT"),
        cold = layout("COLD"),
    )
}

/// Value `name` of breaker `key`'s state, as text (an error if the key has no state), read
/// with `command` (a server's `command` or `command_readonly`).
pub(crate) fn read_state(
    command: impl Fn(&[&str]) -> Result<String, String>,
    key: &str,
    name: &str,
) -> Result<String, String> {
    command(&["EVAL_RO", &state_script(), "1", key, name])
}

/// Sets value `name` of breaker `key`'s state to `value` with `command`.
pub(crate) fn write_state(
    command: impl Fn(&[&str]) -> Result<String, String>,
    key: &str,
    name: &str,
    value: &str,
) -> Result<String, String> {
    command(&["EVAL", &state_script(), "1", key, name, value])
}
