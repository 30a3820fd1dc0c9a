//! `--record FILE`: a file shared by all connections that receives raw
//! bytes in the order they arrive.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// An append-only file written under a lock, one chunk at a time, so chunks
/// from different connections never interleave within themselves.
#[derive(Debug)]
pub struct Record {
    file: Mutex<File>,
}

impl Record {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<Record, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open record file {}: {e}", path.display()))?;
        Ok(Record { file: Mutex::new(file) })
    }

    /// Appends `bytes`; a failure is reported on stderr and otherwise ignored.
    pub fn write(&self, bytes: &[u8]) {
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(e) = file.write_all(bytes) {
            eprintln!("postern-bench: record: {e}");
        }
    }
}

/// A reader that copies every chunk it reads into a [`Record`] before
/// handing it on.
#[derive(Debug)]
pub struct Recording<R> {
    inner: R,
    record: Option<Arc<Record>>,
}

impl<R> Recording<R> {
    /// Wraps `inner`; with `None` this is a plain pass-through.
    pub fn new(inner: R, record: Option<Arc<Record>>) -> Recording<R> {
        Recording { inner, record }
    }
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(record) = &self.record {
            if n > 0 {
                record.write(&buf[..n]);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_reader_copies_chunks_in_order() {
        let path = std::env::temp_dir().join(format!("postern-bench-record-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, b"old|").unwrap();
        let record = Arc::new(Record::open(&path).unwrap());
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut reader = Recording::new(&data[..], Some(Arc::clone(&record)));
        let mut chunk = [0u8; 333];
        let mut seen = Vec::new();
        loop {
            let n = reader.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        let mut other = Recording::new(&b"\r\nmore"[..], Some(record));
        io::copy(&mut other, &mut io::sink()).unwrap();
        let written = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(seen == data);
        let mut expected = b"old|".to_vec();
        expected.extend_from_slice(&data);
        expected.extend_from_slice(b"\r\nmore");
        assert!(written == expected, "record differs");
        assert!(Record::open(Path::new("/nonexistent/dir/record")).is_err());
    }
}
