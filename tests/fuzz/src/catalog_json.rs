//! cargo-afl target `catalog_json`: the property in [`properties::catalog_json`] (`scripts/fuzz.sh catalog_json SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::catalog_json(data);
    });
}
