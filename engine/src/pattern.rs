//! Deterministic data for checking I/O end to end: a fast generator for
//! offsets and payloads, and self-describing blocks that say which block
//! they are, which write produced them, and whether they are intact.
//! Tests of every layer (engine, filesystem, ublk) verify data with these.

/// xorshift64*: deterministic, fast, good enough for offsets and payloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is below 2^-40 for n < 2^24.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Bytes of the header of a patterned block: number, generation, checksum.
pub const PATTERN_HEADER_BYTES: usize = 24;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills `block` (more than 24 bytes) as block `number` of write `generation`:
/// `[number u64][generation u64][checksum u64][payload from (number, generation)]`.
pub fn fill_block(block: &mut [u8], number: u64, generation: u64) {
    Rng::new(number ^ generation.rotate_left(32)).fill(&mut block[PATTERN_HEADER_BYTES..]);
    block[0..8].copy_from_slice(&number.to_le_bytes());
    block[8..16].copy_from_slice(&generation.to_le_bytes());
    let sum = fnv1a(&block[PATTERN_HEADER_BYTES..]) ^ number ^ generation;
    block[16..24].copy_from_slice(&sum.to_le_bytes());
}

/// Checks a block written by [`fill_block`] as block `number`; returns its generation.
pub fn check_block(block: &[u8], number: u64) -> Result<u64, String> {
    let word = |i: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&block[i * 8..i * 8 + 8]);
        u64::from_le_bytes(raw)
    };
    let (stored_number, generation, sum) = (word(0), word(1), word(2));
    if stored_number != number {
        return Err(format!("block {number} holds block {stored_number}'s data"));
    }
    if fnv1a(&block[PATTERN_HEADER_BYTES..]) ^ number ^ generation != sum {
        return Err(format!(
            "block {number} generation {generation}: checksum mismatch"
        ));
    }
    let mut expected = vec![0u8; block.len()];
    fill_block(&mut expected, number, generation);
    if expected != block {
        return Err(format!(
            "block {number} generation {generation}: payload differs"
        ));
    }
    Ok(generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_check_out_and_damage_is_caught() {
        let mut block = vec![0u8; 4096];
        fill_block(&mut block, 17, 3);
        assert_eq!(check_block(&block, 17), Ok(3));
        assert!(check_block(&block, 18).is_err(), "wrong place");
        block[100] ^= 1;
        assert!(check_block(&block, 17).is_err(), "flipped bit");
        let zeros = vec![0u8; 4096];
        assert!(check_block(&zeros, 0).is_err(), "never written");
    }
}
