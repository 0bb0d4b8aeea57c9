//! The CPU a search report's numbers come from: its model and the SIMD
//! extensions faiss dispatches on, read from /proc/cpuinfo, so a reader can
//! tell an AVX-512 host's figures from an AVX2 one's.

use serde::Serialize;

const CPUINFO: &str = "/proc/cpuinfo";

/// The first processor of /proc/cpuinfo (they are alike on the hosts measured).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HostCpu {
    /// `model name`, or "unknown" where the file does not say.
    pub model: String,
    pub avx2: bool,
    pub avx512f: bool,
    /// Every flag, to check a SIMD level asked for before anything runs at it.
    #[serde(skip)]
    flags: Vec<String>,
}

impl HostCpu {
    /// This machine's; "unknown" with no flags where /proc/cpuinfo cannot be read.
    pub fn read() -> HostCpu {
        std::fs::read_to_string(CPUINFO)
            .map(|text| HostCpu::parse(&text))
            .unwrap_or_else(|_| HostCpu::parse(""))
    }

    pub fn parse(cpuinfo: &str) -> HostCpu {
        let first = cpuinfo.split("\n\n").next().unwrap_or_default();
        let field = |name: &str| {
            first.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let flags: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let has = |flag: &str| flags.iter().any(|f| f == flag);
        HostCpu {
            model: field("model name").unwrap_or_else(|| "unknown".to_string()),
            avx2: has("avx2"),
            avx512f: has("avx512f"),
            flags,
        }
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// `AMD EPYC (avx2 yes, avx512f yes)`.
    pub fn describe(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        format!(
            "{} (avx2 {}, avx512f {})",
            self.model,
            yes_no(self.avx2),
            yes_no(self.avx512f)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_and_simd_flags_come_from_the_first_processor() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vpopcntdq\n\n\
                    processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n";
        let cpu = HostCpu::parse(text);
        assert_eq!(cpu.model, "AMD EPYC");
        assert!(cpu.avx2 && cpu.avx512f && cpu.has_flag("avx512_vpopcntdq"));
        assert!(!cpu.has_flag("avx512"), "whole flags only");
        assert_eq!(cpu.describe(), "AMD EPYC (avx2 yes, avx512f yes)");
        let bare = HostCpu::parse("");
        assert_eq!(bare.describe(), "unknown (avx2 no, avx512f no)");
    }
}
