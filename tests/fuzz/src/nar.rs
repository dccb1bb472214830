//! cargo-afl target `nar`: the property in [`properties::nar`] (`scripts/fuzz.sh nar SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::nar(data);
    });
}
