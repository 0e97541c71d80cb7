//! Named parameter groups: selecting slices of a model's flat parameter vector by name, for
//! per-group learning-rate multipliers (μP), freezing, masks, RiFT's modules and the
//! parameters a test-time adaptation method adapts.
//!
//! Names are dotted paths, `"{layer}.{param}"` with nested containers adding segments
//! (`"block2.conv.weight"`). A *pattern* selects every name whose leading segments it matches,
//! segment by segment, where `*` matches any one segment: `"block2"` selects everything in
//! `block2`, `"block2.conv"` its convolution, `"*.bn.weight"` every batch-norm scale one level
//! down, and `"fc.bias"` exactly that tensor. Patterns never match part of a segment
//! (`"block2"` does not select `"block20.…"`).

use std::ops::Range;

use ndarray::Array1;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::sequential::{NamedRange, Sequential};
use crate::Float;

/// Whether `pattern` selects `name` (see the [module docs](self)).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut names = name.split('.');
    pattern
        .split('.')
        .all(|p| names.next().is_some_and(|n| p == "*" || p == n))
}

/// The named tensors of a flat parameter (or buffer) vector, queried by pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamGroups {
    entries: Vec<NamedRange>,
    len: usize,
}

impl ParamGroups {
    /// Groups over a layout (ranges in order, as [`Sequential::parameter_layout`] gives).
    pub fn new(entries: Vec<NamedRange>) -> Self {
        let len = entries.iter().map(|e| e.range.end).max().unwrap_or(0);
        Self { entries, len }
    }

    /// The parameter groups of a model.
    pub fn of<F: Float>(model: &Sequential<F>) -> Self {
        Self::new(model.parameter_layout())
    }

    /// Every named tensor.
    pub fn entries(&self) -> &[NamedRange] {
        &self.entries
    }

    /// Length of the flat vector the groups index.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check_pattern(pattern: &str) -> Result<()> {
        if pattern.is_empty() || pattern.split('.').any(str::is_empty) {
            return Err(Error::invalid(
                "pattern",
                format!("{pattern:?}"),
                "patterns are dotted names without empty segments",
            ));
        }
        Ok(())
    }

    /// The tensors `pattern` selects; an error names the pattern when it selects nothing (a
    /// typo would otherwise silently select no parameters).
    pub fn select(&self, pattern: &str) -> Result<Vec<&NamedRange>> {
        Self::check_pattern(pattern)?;
        let found: Vec<&NamedRange> = self
            .entries
            .iter()
            .filter(|e| pattern_matches(pattern, &e.name))
            .collect();
        if found.is_empty() {
            return Err(Error::invalid(
                "pattern",
                format!("{pattern:?}"),
                "selects no parameter",
            ));
        }
        Ok(found)
    }

    /// The ranges of the flat vector `pattern` selects.
    pub fn ranges(&self, pattern: &str) -> Result<Vec<Range<usize>>> {
        Ok(self
            .select(pattern)?
            .into_iter()
            .map(|e| e.range.clone())
            .collect())
    }

    /// Number of entries `pattern` selects.
    pub fn count(&self, pattern: &str) -> Result<usize> {
        Ok(self.select(pattern)?.iter().map(|e| e.range.len()).sum())
    }

    /// A flat 0/1 vector: 1 on every entry any of `patterns` selects (masks, EcoTTA's adapted
    /// parameters, gradient filters).
    pub fn indicator<F: Float>(&self, patterns: &[&str]) -> Result<Array1<F>> {
        let mut out = Array1::zeros(self.len);
        for p in patterns {
            for r in self.ranges(p)? {
                out.slice_mut(ndarray::s![r]).fill(F::one());
            }
        }
        Ok(out)
    }

    /// The distinct name prefixes of `depth` segments, in layout order: `depth = 1` gives the
    /// top-level layers (`"conv1"`, `"block2"`, `"fc"`), `depth = 2` their sub-layers — the
    /// "modules" RiFT ranks by robust criticality.
    pub fn modules(&self, depth: usize) -> Result<Vec<String>> {
        if depth == 0 {
            return Err(Error::invalid("depth", 0, "must be at least 1"));
        }
        let mut out: Vec<String> = Vec::new();
        for e in &self.entries {
            let segs: Vec<&str> = e.name.split('.').collect();
            // The last segment is the tensor ("weight"), never a module.
            let take = depth.min(segs.len().saturating_sub(1)).max(1);
            let m = segs[..take].join(".");
            if out.last() != Some(&m) && !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> ParamGroups {
        let names = [
            ("conv1.weight", 6),
            ("conv1.bias", 2),
            ("block2.conv.weight", 4),
            ("block2.bn.weight", 2),
            ("block2.bn.bias", 2),
            ("block20.bn.weight", 1),
            ("fc.bias", 3),
        ];
        let mut offset = 0;
        ParamGroups::new(
            names
                .iter()
                .map(|&(n, len)| {
                    let range = offset..offset + len;
                    offset += len;
                    NamedRange {
                        name: n.to_string(),
                        shape: vec![len],
                        range,
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn patterns_match_whole_leading_segments() {
        assert!(pattern_matches("block2", "block2.conv.weight"));
        assert!(!pattern_matches("block2", "block20.bn.weight"));
        assert!(pattern_matches("*.bn", "block2.bn.bias"));
        assert!(pattern_matches("*.bn.weight", "block20.bn.weight"));
        assert!(!pattern_matches("fc.bias.x", "fc.bias"));
        let g = groups();
        assert_eq!(g.count("block2").unwrap(), 8);
        assert_eq!(g.count("*.bn").unwrap(), 5);
        assert_eq!(g.ranges("fc.bias").unwrap(), vec![17..20]);
        assert!(g.select("block3").is_err());
        assert!(g.select("").is_err());
        assert!(g.select("a..b").is_err());
        let ind = g.indicator::<f64>(&["conv1.bias", "fc"]).unwrap();
        assert_eq!(ind.sum(), 5.0);
        assert_eq!(ind[6], 1.0);
        assert_eq!(ind[5], 0.0);
        assert_eq!(g.modules(1).unwrap(), ["conv1", "block2", "block20", "fc"]);
        assert_eq!(
            g.modules(2).unwrap(),
            ["conv1", "block2.conv", "block2.bn", "block20.bn", "fc"]
        );
    }
}
