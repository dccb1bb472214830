//! cargo-afl target `manifest`: the property in [`properties::manifest`] (`scripts/fuzz.sh manifest SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::manifest(data);
    });
}
