//! Stream value.

#[derive(Debug, Clone, Default)]
pub struct Stream {}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }
}
