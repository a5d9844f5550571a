//! The AOF manifest: which files make up the log, in Redis 7.0's format
//! (`file <name> seq <n> type <b|h|i>` per line).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::fs::Fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AofKind {
    Base,
    History,
    Incr,
}

impl AofKind {
    fn letter(self) -> char {
        match self {
            AofKind::Base => 'b',
            AofKind::History => 'h',
            AofKind::Incr => 'i',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFileInfo {
    pub name: String,
    pub seq: u64,
    pub kind: AofKind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFileInfo>,
    pub incrs: Vec<AofFileInfo>,
    pub history: Vec<AofFileInfo>,
}

impl Manifest {
    /// A manifest listing only the base file `name` (sequence 1).
    pub fn with_base(name: String) -> Manifest {
        Manifest {
            base: Some(AofFileInfo {
                name,
                seq: 1,
                kind: AofKind::Base,
            }),
            ..Default::default()
        }
    }

    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if !words.len().is_multiple_of(2) {
                return Err(format!("manifest line {}: odd number of words", n + 1));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in words.chunks(2) {
                match kv[0] {
                    "file" => name = Some(kv[1].trim_matches('"').to_string()),
                    "seq" => seq = kv[1].parse::<u64>().ok(),
                    "type" => {
                        kind = match kv[1] {
                            "b" => Some(AofKind::Base),
                            "h" => Some(AofKind::History),
                            "i" => Some(AofKind::Incr),
                            _ => None,
                        }
                    }
                    _ => {} // Unknown keys are ignored, as Redis does.
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(format!("manifest line {}: invalid entry '{line}'", n + 1));
            };
            if name.contains('/') || name.contains("..") {
                return Err(format!("manifest line {}: bad file name '{name}'", n + 1));
            }
            let info = AofFileInfo { name, seq, kind };
            match kind {
                AofKind::Base => {
                    if m.base.is_some() {
                        return Err(format!("manifest line {}: more than one base file", n + 1));
                    }
                    m.base = Some(info)
                }
                AofKind::Incr => {
                    if m.incrs.last().is_some_and(|l| l.seq >= seq) {
                        return Err(format!("manifest line {}: incr files out of order", n + 1));
                    }
                    m.incrs.push(info)
                }
                AofKind::History => m.history.push(info),
            }
        }
        if m.base.is_none() && m.incrs.is_empty() {
            return Err("manifest lists no base and no incr file".into());
        }
        Ok(m)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for f in self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incrs.iter())
        {
            let _ = writeln!(s, "file {} seq {} type {}", f.name, f.seq, f.kind.letter());
        }
        s
    }

    pub fn next_incr_seq(&self) -> u64 {
        self.incrs.last().map_or(1, |f| f.seq + 1)
    }

    pub fn next_base_seq(&self) -> u64 {
        self.base.as_ref().map_or(1, |f| f.seq + 1)
    }

    /// Writes the manifest atomically: temp file, fsync, durable rename.
    pub fn store(&self, fs: &dyn Fs, dir: &Path, appendfilename: &str) -> io::Result<()> {
        let path = dir.join(manifest_name(appendfilename));
        let tmp = dir.join(format!("temp-{}", manifest_name(appendfilename)));
        let f = fs.create(&tmp)?;
        f.write_all(self.to_text().as_bytes())?;
        f.sync_data()?;
        drop(f);
        fs.durable_rename(&tmp, &path)
    }

    pub fn load(fs: &dyn Fs, dir: &Path, appendfilename: &str) -> io::Result<Option<Manifest>> {
        let path = dir.join(manifest_name(appendfilename));
        match fs.read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "manifest is not UTF-8")
                })?;
                Manifest::parse(&text)
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

pub fn base_name(appendfilename: &str, seq: u64, rdb: bool) -> String {
    format!(
        "{appendfilename}.{seq}.base.{}",
        if rdb { "rdb" } else { "aof" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.incrs.len(), 2);
        assert_eq!(m.to_text(), text);
        assert_eq!(m.next_incr_seq(), 3);
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(Manifest::parse("").is_err());
        assert!(Manifest::parse("file a seq x type i\n").is_err());
        assert!(Manifest::parse("file ../etc/passwd seq 1 type i\n").is_err());
        assert!(Manifest::parse("file a seq 2 type i\nfile b seq 1 type i\n").is_err());
    }
}
