//! Claims, their verdicts and when they are expected to hold.

use std::fmt;

use super::context::Mode;

/// The verdict on one claim, computed from measured numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The full test passed.
    Reproduced,
    /// Only the weaker (partial) test passed.
    Partly,
    /// Neither test passed.
    NotReproduced,
}

impl Verdict {
    /// Reproduced if `full`, Partly if `partial`, otherwise NotReproduced.
    pub fn from_tests(full: bool, partial: bool) -> Self {
        if full {
            Verdict::Reproduced
        } else if partial {
            Verdict::Partly
        } else {
            Verdict::NotReproduced
        }
    }

    /// The word used in REPORT.md and in `claims.csv` (`reproduced`, `partly`,
    /// `not reproduced`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Partly => "partly",
            Verdict::NotReproduced => "not reproduced",
        }
    }

    /// Parses [`Verdict::as_str`]'s words back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reproduced" => Some(Verdict::Reproduced),
            "partly" => Some(Verdict::Partly),
            "not reproduced" => Some(Verdict::NotReproduced),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a claim is expected to hold; `--check` fails if an expected claim's verdict is not
/// Reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Expectation {
    /// Expected to be reproduced in quick and full mode.
    Always,
    /// Expected to be reproduced in full mode only (quick mode is too small).
    FullOnly,
    /// Reported but not checked (the default: a claim is checked only when its author
    /// says it should hold).
    #[default]
    Never,
}

impl Expectation {
    /// Whether a claim with this expectation must be reproduced in `mode`.
    pub fn checked_in(self, mode: Mode) -> bool {
        match self {
            Expectation::Always => true,
            Expectation::FullOnly => mode == Mode::Full,
            Expectation::Never => false,
        }
    }

    /// The word used in `claims.csv` (`always`, `full-only`, `never`).
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Always => "always",
            Expectation::FullOnly => "full-only",
            Expectation::Never => "never",
        }
    }

    /// Parses [`Expectation::as_str`]'s words back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(Expectation::Always),
            "full-only" => Some(Expectation::FullOnly),
            "never" => Some(Expectation::Never),
            _ => None,
        }
    }
}

/// One claim of a paper, tested on our numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The paper's statement, in our words.
    pub statement: String,
    /// The paper's own number, if any ("80.66% -> 8.96%").
    pub paper: Option<String>,
    /// What we measured, e.g. "gap 4.1 ± 0.8 pp -> 1.2 ± 0.5 pp".
    pub ours: String,
    /// The test applied, e.g. "one-sided: mean gap at x8 < mean gap at x1 by > 1 std".
    pub test: String,
    /// Computed from numbers, never hard-coded.
    pub verdict: Verdict,
    /// When the claim is expected to hold (what `--check` enforces).
    pub expectation: Expectation,
}

impl Claim {
    /// Builder taking the verdict computed by the caller; no paper number, expectation
    /// [`Expectation::Never`] until set.
    pub fn new(
        statement: impl Into<String>,
        ours: impl Into<String>,
        test: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Claim {
            statement: statement.into(),
            paper: None,
            ours: ours.into(),
            test: test.into(),
            verdict,
            expectation: Expectation::Never,
        }
    }

    /// Sets the paper's own number.
    pub fn paper(mut self, paper: impl Into<String>) -> Self {
        self.paper = Some(paper.into());
        self
    }

    /// Sets when the claim is expected to hold.
    pub fn expect(mut self, e: Expectation) -> Self {
        self.expectation = e;
        self
    }

    /// Whether `--check` in `mode` counts this claim as a failure: it is expected to hold in
    /// `mode` and its verdict is not [`Verdict::Reproduced`].
    pub fn fails_check(&self, mode: Mode) -> bool {
        self.expectation.checked_in(mode) && self.verdict != Verdict::Reproduced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_tests_prefers_full() {
        assert_eq!(Verdict::from_tests(true, false), Verdict::Reproduced);
        assert_eq!(Verdict::from_tests(true, true), Verdict::Reproduced);
        assert_eq!(Verdict::from_tests(false, true), Verdict::Partly);
        assert_eq!(Verdict::from_tests(false, false), Verdict::NotReproduced);
    }

    #[test]
    fn words_round_trip() {
        for v in [Verdict::Reproduced, Verdict::Partly, Verdict::NotReproduced] {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        for e in [
            Expectation::Always,
            Expectation::FullOnly,
            Expectation::Never,
        ] {
            assert_eq!(Expectation::parse(e.as_str()), Some(e));
        }
        assert_eq!(Verdict::parse("yes"), None);
    }

    #[test]
    fn check_logic_per_mode() {
        let claim = |v, e| Claim::new("s", "o", "t", v).expect(e);
        let partly_always = claim(Verdict::Partly, Expectation::Always);
        assert!(partly_always.fails_check(Mode::Quick));
        assert!(partly_always.fails_check(Mode::Full));
        let not_full_only = claim(Verdict::NotReproduced, Expectation::FullOnly);
        assert!(!not_full_only.fails_check(Mode::Quick));
        assert!(not_full_only.fails_check(Mode::Full));
        let never = claim(Verdict::NotReproduced, Expectation::Never);
        assert!(!never.fails_check(Mode::Full));
        let ok = claim(Verdict::Reproduced, Expectation::Always);
        assert!(!ok.fails_check(Mode::Quick));
        assert!(!ok.fails_check(Mode::Full));
    }

    #[test]
    fn builder_sets_fields() {
        let c = Claim::new("s", "o", "t", Verdict::Partly)
            .paper("80% -> 9%")
            .expect(Expectation::FullOnly);
        assert_eq!(c.paper.as_deref(), Some("80% -> 9%"));
        assert_eq!(c.expectation, Expectation::FullOnly);
        assert_eq!(
            Claim::new("s", "o", "t", Verdict::Partly).expectation,
            Expectation::Never
        );
    }
}
