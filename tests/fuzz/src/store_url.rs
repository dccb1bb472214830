//! cargo-afl target `store_url`: the property in [`properties::store_url`] (`scripts/fuzz.sh store_url SECONDS`).
mod properties;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        properties::store_url(data);
    });
}
