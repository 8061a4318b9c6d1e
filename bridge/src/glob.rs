//! Topic patterns for `--out` and `--in`: `*` matches within one `/`-separated level, `**`
//! matches across levels, `?` one byte; everything else matches itself.

/// One `--out` / `--in` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// A pattern; every string is a valid pattern.
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.to_owned())
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `topic` matches the whole pattern.
    pub fn matches(&self, topic: &str) -> bool {
        matches(self.0.as_bytes(), topic.as_bytes())
    }
}

/// True when any of `globs` matches `topic`.
pub fn any_matches(globs: &[Glob], topic: &str) -> bool {
    globs.iter().any(|g| g.matches(topic))
}

fn matches(p: &[u8], t: &[u8]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            (0..=t.len()).any(|i| matches(rest, &t[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            let level_end = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
            (0..=level_end).any(|i| matches(rest, &t[i..]))
        }
        Some(b'?') => !t.is_empty() && t[0] != b'/' && matches(&p[1..], &t[1..]),
        Some(&c) => t.first() == Some(&c) && matches(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn levels() {
        let g = Glob::new("robot/*/imu");
        assert!(g.matches("robot/a/imu"));
        assert!(!g.matches("robot/a/b/imu"));
        assert!(!g.matches("robot/a/imu2"));
        let g = Glob::new("robot/**");
        assert!(g.matches("robot/a/b/imu"));
        assert!(!g.matches("robots/a"));
        assert!(Glob::new("**").matches("anything/at/all"));
        assert!(Glob::new("*").matches("chatter"));
        assert!(!Glob::new("*").matches("a/b"));
        assert!(Glob::new("cam?").matches("cam1"));
        assert!(!Glob::new("cam?").matches("cam12"));
        assert!(Glob::new("chatter").matches("chatter"));
        assert!(!Glob::new("chatter").matches("chatter2"));
    }
}
