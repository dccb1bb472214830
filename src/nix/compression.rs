//! How NAR files in a binary cache are compressed: the narinfo `Compression` field, the file
//! extension, and the decoder for each method Nix writes.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How NAR files in a cache are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (multithreaded), the default.
    #[default]
    Zstd,
    /// xz, what Nix itself uses by default (slow).
    Xz,
    /// Uncompressed.
    None,
    /// bzip2: read only (Nix's default when a narinfo names no compression).
    Bzip2,
    /// brotli (`br`): read only.
    #[serde(rename = "br")]
    Brotli,
    /// gzip: read only.
    Gzip,
    /// lz4 frames: read only.
    Lz4,
    /// lzma ("alone" format): read only.
    Lzma,
}

impl Compression {
    /// The narinfo `Compression` value.
    pub fn nix_name(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Xz => "xz",
            Self::None => "none",
            Self::Bzip2 => "bzip2",
            Self::Brotli => "br",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
            Self::Lzma => "lzma",
        }
    }

    /// Parses a narinfo `Compression` value: every method Nix writes that a well-kept crate
    /// reads (Nix 2.8 also writes `lzip` and `compress` through libarchive; those are refused
    /// with the method's name).
    pub fn from_nix_name(s: &str) -> Option<Self> {
        match s {
            "zstd" => Some(Self::Zstd),
            "xz" => Some(Self::Xz),
            "none" => Some(Self::None),
            "bzip2" => Some(Self::Bzip2),
            "br" => Some(Self::Brotli),
            "gzip" => Some(Self::Gzip),
            "lz4" => Some(Self::Lz4),
            "lzma" => Some(Self::Lzma),
            _ => None,
        }
    }

    /// Whether pubdeck writes NARs with it (it reads them all).
    pub fn writable(self) -> bool {
        matches!(self, Self::Zstd | Self::Xz | Self::None)
    }

    /// File name extension of the NAR file, including the dot: `.nar.zst`, `.nar.xz`, `.nar`
    /// (and, as Nix names them, `.nar.bz2`, `.nar.br`, `.nar.gz`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Zstd => ".nar.zst",
            Self::Xz => ".nar.xz",
            Self::None => ".nar",
            Self::Bzip2 => ".nar.bz2",
            Self::Brotli => ".nar.br",
            Self::Gzip => ".nar.gz",
            Self::Lz4 => ".nar.lz4",
            Self::Lzma => ".nar.lzma",
        }
    }

    /// Wraps `r` in the matching decompressor.
    pub fn decoder<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Self::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Self::Xz => Box::new(xz2::read::XzDecoder::new(r)),
            Self::None => Box::new(r),
            Self::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
            Self::Brotli => Box::new(brotli_decompressor::Decompressor::new(r, 64 * 1024)),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Self::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
            Self::Lzma => Box::new(xz2::read::XzDecoder::new_stream(
                r,
                xz2::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?,
            )),
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nix_name())
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_nix_name(s)
            .filter(|c| c.writable())
            .ok_or_else(|| format!("unknown compression {s:?} (expected zstd, xz or none)"))
    }
}
