//! cargo-afl target `key_name`: the property in [`properties::key_name`] (`scripts/fuzz.sh key_name SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::key_name(data);
    });
}
