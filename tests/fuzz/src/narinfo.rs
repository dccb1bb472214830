//! cargo-afl target `narinfo`: the property in [`properties::narinfo`] (`scripts/fuzz.sh narinfo SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::narinfo(data);
    });
}
