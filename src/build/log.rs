//! The build's output as events: lines read per pipe read and sent in batches
//! (`event::LogLines`), overlong lines capped, and the saved log file.

use std::path::{Path, PathBuf};

use tokio::io::AsyncRead;

use crate::event::{Event, EventTx, LogLines, Stream};

use super::MAX_LINE;

/// Writes a build log (plain text lines) to a new file `<build>-<UTC time>.log` in `dir`
/// (created if missing), readable by the user only; returns its path.
pub fn save_log(dir: &Path, build: &str, lines: &[String]) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let stamp = crate::time::rfc3339(crate::time::now_secs()).replace([':', '-'], "");
    let safe: String = build
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    for n in 0..1000 {
        let name = match n {
            0 => format!("{safe}-{stamp}.log"),
            n => format!("{safe}-{stamp}-{n}.log"),
        };
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match file {
            Ok(f) => {
                let mut w = std::io::BufWriter::new(f);
                for line in lines {
                    w.write_all(line.as_bytes())?;
                    w.write_all(b"\n")?;
                }
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "too many logs written this second",
    ))
}

/// Sends the lines of `r` as log events, batched per read (see [`LogLines`]); a line longer
/// than [`MAX_LINE`] is split (nothing is dropped). Reads on when nobody listens any more, so
/// the build never blocks on a full pipe.
pub(super) async fn pump(mut r: impl AsyncRead + Unpin, stream: Stream, tx: EventTx) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = vec![0u8; 64 * 1024];
    // The start of a line whose end has not been read yet.
    let mut pending: Vec<u8> = Vec::new();
    let mut listening = true;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !listening {
            continue;
        }
        let mut batch = LogLines::default();
        let mut data = &buf[..n];
        while let Some(i) = memchr::memchr(b'\n', data) {
            if pending.is_empty() {
                push_capped(&mut batch, &data[..i]);
            } else {
                pending.extend_from_slice(&data[..i]);
                push_capped(&mut batch, &pending);
                pending.clear();
            }
            data = &data[i + 1..];
            if batch.bytes() >= LogLines::BATCH_BYTES {
                listening = send_lines(&tx, stream, std::mem::take(&mut batch)).await;
            }
        }
        pending.extend_from_slice(data);
        while pending.len() >= MAX_LINE {
            push_line(&mut batch, &pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
        if listening && !batch.is_empty() {
            listening = send_lines(&tx, stream, batch).await;
        }
    }
    if listening && !pending.is_empty() {
        let mut last = LogLines::default();
        push_line(&mut last, &pending);
        send_lines(&tx, stream, last).await;
    }
}

/// Adds one line, as pieces of at most [`MAX_LINE`] bytes when longer.
fn push_capped(batch: &mut LogLines, mut line: &[u8]) {
    while line.len() > MAX_LINE {
        push_line(batch, &line[..MAX_LINE]);
        line = &line[MAX_LINE..];
    }
    push_line(batch, line);
}

/// Adds one line (without its `\n`; a trailing `\r` is dropped too), lossy UTF-8.
fn push_line(batch: &mut LogLines, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    batch.push(&String::from_utf8_lossy(line));
}

/// Whether anybody still listens.
async fn send_lines(tx: &EventTx, stream: Stream, lines: LogLines) -> bool {
    tx.send(Event::Log { stream, lines }).await.is_ok()
}
