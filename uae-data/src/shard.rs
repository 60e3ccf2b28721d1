//! Work split across processes or machines: shard `i` of `n` takes the
//! items at positions `i`, `i + n`, `i + 2n`, ... of its input (the queries
//! of a candidates file for `uae label`, the passages of a corpus for
//! `uae index build`), and the shards' outputs merge back into one.

use anyhow::{Result, bail};

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Whether the item at `position` of the input is this shard's.
    pub fn holds(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// Parses `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => bail!("shard {s:?} must look like i/n with 0 <= i < n, e.g. 0/4"),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_hold_every_nth_item() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shard: Shard = "1/3".parse().unwrap();
        assert_eq!((0..8).filter(|&p| shard.holds(p)).collect::<Vec<_>>(), [1, 4, 7]);
    }
}
