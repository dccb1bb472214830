//! Renders the README screenshots (`screenshots/*.svg`) from the real views on demo data.
//!
//! `cargo run --example screenshots` (add `-- --print` to also print them as text).

use std::path::Path;

use pubdeck::tui::screenshots;
use pubdeck::tui::snapshot::buffer_to_text;
use pubdeck::tui::view::render_to_buffer;

fn main() -> std::io::Result<()> {
    let print = std::env::args().any(|a| a == "--print");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&dir)?;
    for (name, app) in screenshots::all() {
        let path = dir.join(name);
        std::fs::write(&path, screenshots::svg(&app))?;
        println!("wrote {}", path.display());
        if print {
            let (w, h) = screenshots::SIZE;
            let text = buffer_to_text(&render_to_buffer(&app, w, h));
            println!(
                "{}",
                text.split("--- styles ---").next().unwrap_or_default()
            );
        }
    }
    Ok(())
}
