use super::log::pump;
use super::*;
use crate::event::{LogLines, Stream};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

/// A reader that returns the given chunks, one per read.
struct Chunks(VecDeque<Vec<u8>>);

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(mut c) = self.0.pop_front() {
            let n = c.len().min(buf.remaining());
            buf.put_slice(&c[..n]);
            if n < c.len() {
                self.0.push_front(c.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

async fn pumped(chunks: Vec<Vec<u8>>) -> Vec<LogLines> {
    let (tx, mut rx) = crate::event::channel();
    pump(Chunks(chunks.into()), Stream::Stdout, tx).await;
    let mut out = Vec::new();
    while let Ok(Event::Log { lines, .. }) = rx.try_recv() {
        out.push(lines);
    }
    out
}

fn all(batches: &[LogLines]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.iter().map(str::to_string))
        .collect()
}

#[test]
fn save_log_writes_a_new_private_file_each_time() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lines = vec!["one".to_string(), "two".to_string()];
    let a = save_log(&logs, "hello", &lines).unwrap();
    let b = save_log(&logs, "he/llo", &lines).unwrap();
    let c = save_log(&logs, "hello", &[]).unwrap();
    assert_ne!(a, c, "a second log never replaces the first");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "one\ntwo\n");
    assert_eq!(std::fs::read_to_string(&c).unwrap(), "");
    assert_eq!(
        b.parent(),
        Some(logs.as_path()),
        "no path separators from the name"
    );
    assert!(
        b.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("he_llo-")
    );
    let mode = std::fs::metadata(&a).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
}

#[tokio::test]
async fn lines_split_across_reads_crlf_invalid_utf8_and_no_final_newline() {
    let got = pumped(vec![
        b"one\r\ntw".to_vec(),
        b"o\n".to_vec(),
        b"\n\xff\xfe bad\nlast".to_vec(),
    ])
    .await;
    assert_eq!(
        all(&got),
        ["one", "two", "", "\u{fffd}\u{fffd} bad", "last"]
    );
    assert_eq!(
        got.len(),
        4,
        "one event per read, and one for the unfinished line"
    );
}

#[tokio::test]
async fn batches_are_bounded_and_keep_order() {
    let text: String = (0..10_000).map(|i| format!("{i:079}\n")).collect();
    let chunks = text.as_bytes().chunks(50_000).map(<[u8]>::to_vec).collect();
    let got = pumped(chunks).await;
    let lines = all(&got);
    assert_eq!(lines.len(), 10_000);
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("{i:079}"))
    );
    assert!(got.len() > 10_000 * 79 / (LogLines::BATCH_BYTES + 79));
    assert!(
        got.iter()
            .all(|b| b.bytes() < LogLines::BATCH_BYTES + 80 && !b.is_empty())
    );
}

#[tokio::test]
async fn a_line_longer_than_the_cap_is_split_not_dropped() {
    let long = vec![b'x'; MAX_LINE * 2 + 5];
    let mut input = long.clone();
    input.extend_from_slice(b"\nafter\n");
    let chunks = input.chunks(70_000).map(<[u8]>::to_vec).collect();
    let lines = all(&pumped(chunks).await);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0].len(), MAX_LINE);
    assert_eq!(lines[1].len(), MAX_LINE);
    assert_eq!(lines[2], "xxxxx");
    assert_eq!(lines[3], "after");
}
