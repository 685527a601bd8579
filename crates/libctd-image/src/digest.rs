//! Content digests (`sha256:<hex>`) and hashing while bytes stream past.

use std::fmt;

use libctd_core::{Error, Result};
use sha2::{Digest as _, Sha256};

/// The only algorithm images use here; a digest of another algorithm is
/// refused as invalid input.
pub const SHA256: &str = "sha256";

/// A sha256 content digest, kept as its 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lower-case hex digits>`; anything else (another
    /// algorithm, upper case, a wrong length) is `InvalidArgument`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((alg, hex)) = text.split_once(':') else {
            return Err(Error::invalid_argument(format!(
                "digest {text:?} is not of the form algorithm:hex"
            )));
        };
        if alg != SHA256 {
            return Err(Error::invalid_argument(format!(
                "digest {text:?}: algorithm {alg:?} is not supported (only sha256)"
            )));
        }
        Self::from_hex(hex).ok_or_else(|| {
            Error::invalid_argument(format!(
                "digest {text:?}: a sha256 digest is 64 lower-case hex digits"
            ))
        })
    }

    /// The digest whose hex digits are `hex`, if they are 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self {
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_bytes(&Sha256::digest(bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        use fmt::Write as _;
        let mut hex = String::with_capacity(64);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        Self { hex }
    }

    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// A sha256 and a byte count fed as bytes go past.
#[derive(Clone, Default)]
pub struct Hashing {
    sha: Sha256,
    bytes: u64,
}

impl fmt::Debug for Hashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hashing")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Hashing {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.bytes += bytes.len() as u64;
    }

    /// The bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digest of what was fed so far.
    pub fn digest(&self) -> Digest {
        Digest::from_bytes(&self.sha.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    // sha256("") and sha256("abc"), from FIPS 180-2's examples.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_of_known_values() {
        assert_eq!(Digest::of(b"").hex(), EMPTY);
        assert_eq!(Digest::of(b"abc").to_string(), format!("sha256:{ABC}"));
        let mut h = Hashing::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.digest().hex(), ABC);
        assert_eq!(h.bytes(), 3);
    }

    #[test]
    fn parse_accepts_only_sha256_lower_hex() {
        let d = Digest::parse(&format!("sha256:{ABC}")).unwrap();
        assert_eq!(d.hex(), ABC);
        for bad in [
            "",
            ABC,
            "sha256:",
            "sha256:abc",
            &format!("sha512:{ABC}"),
            &format!("sha256:{}", ABC.to_uppercase()),
            &format!("sha256:{ABC}0"),
            &format!("sha256:{}g", &ABC[1..]),
        ] {
            let err = Digest::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn json_round_trip() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:00\"").is_err());
    }
}
