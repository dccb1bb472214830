//! zstd contexts used again from one NAR to the next. A fresh context costs its window and
//! tables in fresh pages (faulted in and zeroed): for a closure of hundreds of small or
//! medium paths, more than compressing some of them. A context taken from the pool writes the
//! same frame a fresh one would (zstd's output depends on its parameters, which are kept, and
//! the session is reset before each use).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use zstd::zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer, ResetDirective, SafeResult};

/// Plain (single-threaded) zstd contexts of one level, at most [`ZstdPool::MAX`] kept.
pub struct ZstdPool {
    level: i32,
    ctxs: Mutex<Vec<CCtx<'static>>>,
}

impl ZstdPool {
    /// Contexts kept for the next NARs (a compressing thread each).
    const MAX: usize = 8;

    pub fn new(level: i32) -> Arc<ZstdPool> {
        Arc::new(ZstdPool {
            level,
            ctxs: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> io::Result<CCtx<'static>> {
        let kept = self.ctxs.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match kept {
            Some(mut ctx) => {
                ctx.reset(ResetDirective::SessionOnly).map_err(zstd_error)?;
                Ok(ctx)
            }
            None => {
                let mut ctx = CCtx::create();
                ctx.set_parameter(CParameter::CompressionLevel(self.level))
                    .map_err(zstd_error)?;
                Ok(ctx)
            }
        }
    }

    fn give(&self, ctx: CCtx<'static>) {
        let mut ctxs = self.ctxs.lock().unwrap_or_else(|e| e.into_inner());
        if ctxs.len() < Self::MAX {
            ctxs.push(ctx);
        }
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd::zstd_safe::get_error_name(code))
}

/// One zstd frame written to `out` with a context from a [`ZstdPool`] (given back by
/// [`Self::finish`]); what `zstd::stream::write::Encoder::new(out, level)` writes.
pub struct PooledZstd<W> {
    ctx: Option<CCtx<'static>>,
    pool: Arc<ZstdPool>,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> PooledZstd<W> {
    pub fn new(pool: &Arc<ZstdPool>, out: W) -> io::Result<PooledZstd<W>> {
        Ok(PooledZstd {
            ctx: Some(pool.take()?),
            pool: pool.clone(),
            out,
            buf: Vec::with_capacity(CCtx::out_size()),
        })
    }

    /// One step of the context (`op`) into the output buffer, whose bytes go on to `out`;
    /// zstd's hint of what is left to write.
    fn step(
        &mut self,
        op: impl FnOnce(&mut CCtx<'static>, &mut OutBuffer<'_, Vec<u8>>) -> SafeResult,
    ) -> io::Result<usize> {
        self.buf.clear();
        let ctx = self.ctx.as_mut().expect("taken until finish");
        let left = op(ctx, &mut OutBuffer::around(&mut self.buf)).map_err(zstd_error)?;
        self.out.write_all(&self.buf)?;
        Ok(left)
    }

    /// Ends the frame; the context goes back to the pool.
    pub fn finish(mut self) -> io::Result<W> {
        while self.step(|ctx, out| ctx.end_stream(out))? != 0 {}
        if let Some(ctx) = self.ctx.take() {
            self.pool.give(ctx);
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for PooledZstd<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut input = InBuffer::around(data);
        while input.pos() < data.len() {
            self.step(|ctx, out| ctx.compress_stream(out, &mut input))?;
        }
        Ok(data.len())
    }

    /// Ends the current block and passes everything on, as zstd's own writer does.
    fn flush(&mut self) -> io::Result<()> {
        while self.step(|ctx, out| ctx.flush_stream(out))? != 0 {}
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context used again writes what a fresh `zstd` encoder writes, frame for frame.
    #[test]
    fn a_context_used_again_writes_what_a_fresh_encoder_writes() {
        let pool = ZstdPool::new(3);
        let texts: Vec<Vec<u8>> = (0..4u32)
            .map(|k| {
                (0..(200_000 + k * 77_777))
                    .map(|i| (i.wrapping_mul(2_654_435_761).rotate_left(k) >> 24) as u8 % 17)
                    .collect()
            })
            .collect();
        for (round, text) in texts.iter().enumerate() {
            let mut ours = PooledZstd::new(&pool, Vec::new()).unwrap();
            for (n, part) in text.chunks(65_536 + round).enumerate() {
                ours.write_all(part).unwrap();
                if n == 1 {
                    ours.flush().unwrap();
                }
            }
            let ours = ours.finish().unwrap();
            let mut theirs = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            for (n, part) in text.chunks(65_536 + round).enumerate() {
                theirs.write_all(part).unwrap();
                if n == 1 {
                    theirs.flush().unwrap();
                }
            }
            let theirs = theirs.finish().unwrap();
            assert_eq!(ours, theirs, "round {round}");
            assert_eq!(zstd::decode_all(&ours[..]).unwrap(), *text);
        }
        assert_eq!(
            pool.ctxs.lock().unwrap().len(),
            1,
            "one context, used again"
        );
    }
}
