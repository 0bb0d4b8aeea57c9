//! What a user may ask of a vector file's index: the index string
//! (`user.vexfs.index`) and the search parameters (`user.vexfs.search`).
//!
//! Both are parsed by our own grammar of the faiss families we support,
//! every number bounded by a named limit and checked against the file's
//! dimensions. faiss is only ever given the canonical string rendered from
//! a parsed [`IndexSpec`], never what a user wrote: strings such as `PQ0`,
//! `HNSW0`, `IVF0,Flat` or `NSG1` crash or hang faiss, and a root daemon
//! serving every user of the mount must not hand them on.
//!
//! ```text
//! index   := "Flat" | hnsw | ivf "," codes | pq | sq | "LSH"
//! hnsw    := "HNSW" M [",Flat"]            M in HNSW_M_MIN..=HNSW_M_MAX
//! ivf     := "IVF" NLIST ["_HNSW" M]        NLIST in 1..=IVF_NLIST_MAX
//! codes   := "Flat" | pq | sq
//! pq      := "PQ" SUBQUANTIZERS ["x" BITS]  SUBQUANTIZERS divides the dimensions; BITS in 1..=PQ_BITS_MAX
//! sq      := "SQ4" | "SQ6" | "SQ8" | "SQfp16"
//! search  := param ("," param)*             param := "efSearch=" N | "nprobe=" N
//! ```

use std::fmt;

/// Longest index string or search-parameter string.
pub const SPEC_BYTES_MAX: usize = 256;
/// Links per node of an HNSW graph.
pub const HNSW_M_MIN: u32 = 4;
pub const HNSW_M_MAX: u32 = 128;
/// Inverted lists of an IVF index.
pub const IVF_NLIST_MAX: u32 = 65_536;
/// Bits per product-quantizer code.
pub const PQ_BITS_MAX: u32 = 16;
/// Bytes of one product quantizer's codebooks (2^bits centroids of the full
/// dimensions, in f32): bounds what training may allocate.
pub const PQ_CODEBOOK_BYTES_MAX: u64 = 256 << 20;
/// Candidates an HNSW search keeps (faiss's efSearch).
pub const EF_SEARCH_MAX: u32 = 4_096;
/// Decimal digits a number in either string may have (no overflow, no exponent).
const DIGITS_MAX: usize = 9;

/// How an IVF index assigns vectors to lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coarse {
    /// A flat quantizer over `nlist` centroids.
    Flat { nlist: u32 },
    /// An HNSW graph over the `nlist` centroids.
    Hnsw { nlist: u32, m: u32 },
}

/// How an index stores the vectors themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codes {
    Flat,
    Pq { subquantizers: u32, bits: u32 },
    Sq(ScalarBits),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarBits {
    Four,
    Six,
    Eight,
    Fp16,
}

/// A parsed, bounded index string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexSpec {
    Flat,
    Hnsw { m: u32 },
    Ivf { coarse: Coarse, codes: Codes },
    Pq { subquantizers: u32, bits: u32 },
    Sq(ScalarBits),
    Lsh,
}

fn number(text: &str, what: &str, min: u32, max: u32) -> Result<u32, String> {
    if text.is_empty() || text.len() > DIGITS_MAX || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what}: {text:?} is not a whole number in {min}..={max}"
        ));
    }
    let value: u32 = text
        .parse()
        .map_err(|_| format!("{what}: {text:?} is not a whole number"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("{what}: {value} is not in {min}..={max}"));
    }
    Ok(value)
}

fn hnsw_m(text: &str) -> Result<u32, String> {
    number(text, "HNSW M (links per node)", HNSW_M_MIN, HNSW_M_MAX)
}

fn pq(part: &str) -> Result<(u32, u32), String> {
    let (m, bits) = match part.split_once('x') {
        Some((m, bits)) => (m, Some(bits)),
        None => (part, None),
    };
    let subquantizers = number(m, "PQ sub-quantizers", 1, u32::from(u16::MAX))?;
    let bits = match bits {
        Some(bits) => number(bits, "PQ bits per code", 1, PQ_BITS_MAX)?,
        None => 8,
    };
    Ok((subquantizers, bits))
}

fn sq(part: &str) -> Option<ScalarBits> {
    match part {
        "SQ4" => Some(ScalarBits::Four),
        "SQ6" => Some(ScalarBits::Six),
        "SQ8" => Some(ScalarBits::Eight),
        "SQfp16" => Some(ScalarBits::Fp16),
        _ => None,
    }
}

fn codes(part: &str) -> Result<Codes, String> {
    if part == "Flat" {
        return Ok(Codes::Flat);
    }
    if let Some(rest) = part.strip_prefix("PQ") {
        let (subquantizers, bits) = pq(rest)?;
        return Ok(Codes::Pq {
            subquantizers,
            bits,
        });
    }
    sq(part)
        .map(Codes::Sq)
        .ok_or_else(|| format!("{part:?} is not Flat, PQ<m>[x<bits>], SQ4, SQ6, SQ8 or SQfp16"))
}

impl IndexSpec {
    /// Parses an index string; the error names the part that is refused.
    pub fn parse(text: &str) -> Result<IndexSpec, String> {
        let text = text.trim();
        if text.len() > SPEC_BYTES_MAX {
            return Err(format!(
                "{} bytes, over the maximum of {SPEC_BYTES_MAX}",
                text.len()
            ));
        }
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let spec = match parts.as_slice() {
            ["Flat"] => IndexSpec::Flat,
            ["LSH"] => IndexSpec::Lsh,
            [one] if sq(one).is_some() => IndexSpec::Sq(sq(one).expect("just matched")),
            [one] if one.starts_with("PQ") => {
                let (subquantizers, bits) = pq(&one[2..])?;
                IndexSpec::Pq {
                    subquantizers,
                    bits,
                }
            }
            [one] | [one, "Flat"] if one.starts_with("HNSW") => IndexSpec::Hnsw {
                m: hnsw_m(&one[4..])?,
            },
            [coarse, codes_part] if coarse.starts_with("IVF") => {
                let coarse = match coarse[3..].split_once("_HNSW") {
                    Some((nlist, m)) => Coarse::Hnsw {
                        nlist: number(nlist, "IVF lists", 1, IVF_NLIST_MAX)?,
                        m: hnsw_m(m)?,
                    },
                    None => Coarse::Flat {
                        nlist: number(&coarse[3..], "IVF lists", 1, IVF_NLIST_MAX)?,
                    },
                };
                IndexSpec::Ivf {
                    coarse,
                    codes: codes(codes_part)?,
                }
            }
            _ => {
                return Err(format!(
                    "{text:?}: not an index this filesystem builds (Flat, HNSW<M>, IVF<n>,Flat, IVF<n>,PQ<m>[x<b>], IVF<n>,SQ8, IVF<n>_HNSW<M>,Flat, PQ<m>[x<b>], SQ4/SQ6/SQ8/SQfp16, LSH)"
                ))
            }
        };
        Ok(spec)
    }

    /// Checks the spec against a file of `dimensions`.
    pub fn check_dimensions(&self, dimensions: u32) -> Result<(), String> {
        let pq = match self {
            IndexSpec::Pq {
                subquantizers,
                bits,
            }
            | IndexSpec::Ivf {
                codes:
                    Codes::Pq {
                        subquantizers,
                        bits,
                    },
                ..
            } => Some((*subquantizers, *bits)),
            _ => None,
        };
        if let Some((subquantizers, bits)) = pq {
            if subquantizers > dimensions || dimensions % subquantizers != 0 {
                return Err(format!(
                    "PQ{subquantizers}: the sub-quantizers must divide the file's {dimensions} dimensions"
                ));
            }
            let codebook_bytes = (1u64 << bits) * u64::from(dimensions) * 4;
            if codebook_bytes > PQ_CODEBOOK_BYTES_MAX {
                return Err(format!(
                    "PQ{subquantizers}x{bits}: codebooks of {codebook_bytes} bytes for {dimensions} dimensions, over the maximum of {PQ_CODEBOOK_BYTES_MAX}"
                ));
            }
        }
        if matches!(self, IndexSpec::Sq(ScalarBits::Four | ScalarBits::Six)) && dimensions % 2 != 0
        {
            // faiss packs SQ4/SQ6 codes by pairs of components.
            return Err(format!(
                "{self}: needs an even number of dimensions, the file has {dimensions}"
            ));
        }
        Ok(())
    }

    /// Vectors training needs: below this many the search is answered by
    /// an exact scan instead of building the index.
    pub fn vectors_needed(&self) -> usize {
        let pq_points = |bits: u32| 1usize << bits;
        match self {
            IndexSpec::Flat | IndexSpec::Hnsw { .. } | IndexSpec::Sq(_) | IndexSpec::Lsh => 1,
            IndexSpec::Pq { bits, .. } => pq_points(*bits),
            IndexSpec::Ivf { coarse, codes } => {
                let nlist = match coarse {
                    Coarse::Flat { nlist } | Coarse::Hnsw { nlist, .. } => *nlist as usize,
                };
                match codes {
                    Codes::Pq { bits, .. } => nlist.max(pq_points(*bits)),
                    _ => nlist,
                }
            }
        }
    }

    pub fn is_flat(&self) -> bool {
        *self == IndexSpec::Flat
    }

    fn nlist(&self) -> Option<u32> {
        match self {
            IndexSpec::Ivf {
                coarse: Coarse::Flat { nlist } | Coarse::Hnsw { nlist, .. },
                ..
            } => Some(*nlist),
            _ => None,
        }
    }
}

/// The canonical faiss factory string: what faiss is given.
impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sq = |bits: &ScalarBits| match bits {
            ScalarBits::Four => "SQ4",
            ScalarBits::Six => "SQ6",
            ScalarBits::Eight => "SQ8",
            ScalarBits::Fp16 => "SQfp16",
        };
        match self {
            IndexSpec::Flat => write!(f, "Flat"),
            IndexSpec::Hnsw { m } => write!(f, "HNSW{m}"),
            IndexSpec::Pq {
                subquantizers,
                bits,
            } => write!(f, "PQ{subquantizers}x{bits}"),
            IndexSpec::Sq(bits) => write!(f, "{}", sq(bits)),
            IndexSpec::Lsh => write!(f, "LSH"),
            IndexSpec::Ivf { coarse, codes } => {
                match coarse {
                    Coarse::Flat { nlist } => write!(f, "IVF{nlist},")?,
                    Coarse::Hnsw { nlist, m } => write!(f, "IVF{nlist}_HNSW{m},")?,
                }
                match codes {
                    Codes::Flat => write!(f, "Flat"),
                    Codes::Pq {
                        subquantizers,
                        bits,
                    } => write!(f, "PQ{subquantizers}x{bits}"),
                    Codes::Sq(bits) => write!(f, "{}", sq(bits)),
                }
            }
        }
    }
}

/// Parsed search parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchParams {
    pub ef_search: Option<u32>,
    pub nprobe: Option<u32>,
}

impl SearchParams {
    /// `efSearch=64,nprobe=8` (commas or spaces between); the error names the part.
    pub fn parse(text: &str) -> Result<SearchParams, String> {
        if text.len() > SPEC_BYTES_MAX {
            return Err(format!(
                "{} bytes, over the maximum of {SPEC_BYTES_MAX}",
                text.len()
            ));
        }
        let mut params = SearchParams::default();
        for part in text.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!("search parameter {part:?} is not name=value"));
            };
            let (name, value) = (name.trim(), value.trim());
            match name {
                "efSearch" => params.ef_search = Some(number(value, "efSearch", 1, EF_SEARCH_MAX)?),
                "nprobe" => params.nprobe = Some(number(value, "nprobe", 1, IVF_NLIST_MAX)?),
                other => {
                    return Err(format!(
                        "search parameter {other:?} is not efSearch or nprobe"
                    ))
                }
            }
        }
        Ok(params)
    }

    /// The parameters must be the index's: efSearch for HNSW, nprobe (at
    /// most the lists) for IVF.
    pub fn check_for(&self, spec: &IndexSpec) -> Result<(), String> {
        if self.ef_search.is_some() && !matches!(spec, IndexSpec::Hnsw { .. }) {
            return Err(format!("efSearch applies to HNSW indexes, not {spec}"));
        }
        if let Some(nprobe) = self.nprobe {
            match spec.nlist() {
                None => return Err(format!("nprobe applies to IVF indexes, not {spec}")),
                Some(nlist) if nprobe > nlist => {
                    return Err(format!("nprobe {nprobe} is over the index's {nlist} lists"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// As faiss's ParameterSpace names them.
    pub fn faiss_pairs(&self) -> Vec<(&'static str, f64)> {
        let mut pairs = Vec::new();
        if let Some(ef) = self.ef_search {
            pairs.push(("efSearch", f64::from(ef)));
        }
        if let Some(nprobe) = self.nprobe {
            pairs.push(("nprobe", f64::from(nprobe)));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_families_parse_to_canonical_strings() {
        for (text, canonical) in [
            ("Flat", "Flat"),
            (" HNSW32 ", "HNSW32"),
            ("HNSW16,Flat", "HNSW16"),
            ("IVF16,Flat", "IVF16,Flat"),
            ("IVF256,PQ8", "IVF256,PQ8x8"),
            ("IVF256,PQ16x4", "IVF256,PQ16x4"),
            ("IVF64_HNSW32,Flat", "IVF64_HNSW32,Flat"),
            ("IVF64,SQ8", "IVF64,SQ8"),
            ("PQ8", "PQ8x8"),
            ("SQfp16", "SQfp16"),
            ("LSH", "LSH"),
        ] {
            let spec = IndexSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(spec.to_string(), canonical);
            assert_eq!(IndexSpec::parse(canonical).unwrap(), spec);
        }
    }

    #[test]
    fn strings_that_crash_or_hang_faiss_are_refused() {
        for text in [
            "PQ0",
            "HNSW0",
            "HNSW1",
            "HNSW100000",
            "IVF0,Flat",
            "IVF16,PQ0",
            "IVF16,PQ4x0",
            "IVF16,PQ4x17",
            "OPQ0,PQ4",
            "RQ0x8",
            "IVF1_HNSW1,Flat",
            "NSG0,Flat",
            "NSG1",
            "IVF99999999999999,Flat",
            "HNSW-1",
            "HNSW1e3",
            "IVF16",
            "Flat,Flat",
            "",
            "IDMap,Flat",
            "PCA32,Flat",
        ] {
            assert!(IndexSpec::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(IndexSpec::parse(&"HNSW32".repeat(50)).is_err());
    }

    #[test]
    fn the_file_dimensions_bound_pq_and_sq() {
        let pq = IndexSpec::parse("PQ8").unwrap();
        assert!(pq.check_dimensions(64).is_ok());
        assert!(pq.check_dimensions(60).is_err());
        assert!(pq.check_dimensions(4).is_err());
        let big = IndexSpec::parse("PQ1x16").unwrap();
        assert!(
            big.check_dimensions(1536).is_err(),
            "65536 x 1536 codebooks"
        );
        assert!(IndexSpec::parse("SQ4")
            .unwrap()
            .check_dimensions(7)
            .is_err());
        assert_eq!(
            IndexSpec::parse("IVF256,PQ8x10").unwrap().vectors_needed(),
            1024
        );
    }

    #[test]
    fn search_parameters_are_bounded_integers_of_the_right_index() {
        let hnsw = IndexSpec::parse("HNSW32").unwrap();
        let ivf = IndexSpec::parse("IVF16,Flat").unwrap();
        let ef = SearchParams::parse("efSearch=128").unwrap();
        assert_eq!(ef.ef_search, Some(128));
        assert!(ef.check_for(&hnsw).is_ok());
        assert!(ef.check_for(&ivf).is_err());
        let probe = SearchParams::parse("nprobe=8").unwrap();
        assert!(probe.check_for(&ivf).is_ok());
        assert!(SearchParams::parse("nprobe=17")
            .unwrap()
            .check_for(&ivf)
            .is_err());
        for text in [
            "efSearch=NaN",
            "efSearch=2000000000",
            "efSearch=0",
            "nprobe=-1",
            "nprobe=1e18",
            "efSearch=64.5",
            "efSearch",
            "k_factor=4",
            "efSearch=inf",
        ] {
            assert!(SearchParams::parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
