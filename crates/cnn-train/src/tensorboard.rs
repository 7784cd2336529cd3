//! TensorBoard event files (`cnn train --tensorboard`), written from the
//! same records as `steps.csv` and `metrics.csv`, so `tensorboard --logdir
//! runs` shows every run.
//!
//! What is written, under these tags:
//! - per optimizer step (x = the global step, counting from 1):
//!   `step/loss` and `step/lr`, the two value columns of `steps.csv`;
//! - per epoch (x = the epoch, counting from 1): `train/loss`,
//!   `train/accuracy`, `train/precision_macro`, `train/recall_macro`,
//!   `train/f1_macro`, the same five under `val/` for epochs that were
//!   validated, and `epoch/lr`, `epoch/seconds`, `epoch/images_per_sec`:
//!   every column of `metrics.csv`;
//! - per epoch, when the run draws it: `val/confusion_matrix`, the
//!   run's `confusion.png` as an image.
//!
//! Each file starts with the file version (`brain.Event:2`) and a session
//! start at step 0. The format: a file named `events.out.tfevents.<seconds>.cnn.<pid>`
//! (TensorBoard reads files whose name holds `tfevents`) of TFRecords, each
//! a little-endian `u64` length, the length's masked CRC-32C, a serialized
//! `Event` protobuf and its masked CRC-32C (the mask: the CRC rotated right
//! by 15 bits plus `0xa282ead8`). Scalars are `Summary.Value.simple_value`, an `f32`, as
//! TensorBoard stores them. The protos are the few messages of
//! TensorFlow's `event.proto` and `summary.proto` that this needs, written
//! out as prost structs (no `protoc` at build time); the Rust crates made
//! for TensorBoard are unmaintained.
//!
//! The file is appended to as the run goes, once per epoch (the records
//! written since, then a flush and `fsync`), as TensorFlow's writers do, so
//! a TensorBoard watching the directory sees each epoch when it ends; a
//! torn last record (a crash while appending) is one that TensorBoard's
//! reader stops before. Steps get wall times spread evenly over the time
//! since the previous write (cnn does not time single steps). A resumed
//! run writes a new file with its whole history, and its session start
//! makes TensorBoard's reader drop what it read of the older file (its
//! "orphaned data" purge), so a resumed run shows each step once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::error::{Result, TrainError};
use crate::history::{EpochRecord, History, SplitMetrics};

/// The protobuf messages of TensorFlow's `event.proto` and `summary.proto`
/// that cnn writes, with their field numbers.
pub mod proto {
    /// `tensorflow.Event`: a time, a step and what happened.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Event {
        #[prost(double, tag = "1")]
        pub wall_time: f64,
        #[prost(int64, tag = "2")]
        pub step: i64,
        #[prost(oneof = "What", tags = "3, 5, 7")]
        pub what: Option<What>,
    }

    /// `Event.what`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum What {
        /// The first event of a file: `brain.Event:2`.
        #[prost(string, tag = "3")]
        FileVersion(String),
        #[prost(message, tag = "5")]
        Summary(Summary),
        /// A (re)start: TensorBoard drops the events it read before with
        /// a later step.
        #[prost(message, tag = "7")]
        SessionLog(SessionLog),
    }

    /// `tensorflow.SessionLog`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionLog {
        /// `SessionStatus`: 1 is `START`.
        #[prost(int32, tag = "1")]
        pub status: i32,
    }

    /// `SessionLog.SessionStatus.START`.
    pub const SESSION_START: i32 = 1;

    /// `tensorflow.Summary`: tagged values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(message, repeated, tag = "1")]
        pub value: Vec<Value>,
    }

    /// `tensorflow.Summary.Value`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(string, tag = "1")]
        pub tag: String,
        #[prost(oneof = "Kind", tags = "2, 4, 8")]
        pub value: Option<Kind>,
        /// Which plugin the value is for (the HParams plugin's summaries
        /// carry their data here, with no value).
        #[prost(message, optional, tag = "9")]
        pub metadata: Option<SummaryMetadata>,
    }

    /// `tensorflow.SummaryMetadata` (the plugin data only).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SummaryMetadata {
        #[prost(message, optional, tag = "1")]
        pub plugin_data: Option<PluginData>,
    }

    /// `SummaryMetadata.PluginData`: a plugin's name and its serialized
    /// data.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginData {
        #[prost(string, tag = "1")]
        pub plugin_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub content: Vec<u8>,
    }

    /// `Summary.Value.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(float, tag = "2")]
        SimpleValue(f32),
        #[prost(message, tag = "4")]
        Image(Image),
        /// A tensor (the HParams plugin's summaries hold an empty one).
        #[prost(message, tag = "8")]
        Tensor(TensorProto),
    }

    /// `tensorflow.TensorProto`: its type and shape (no values are
    /// written).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// `tensorflow.DataType`: 1 is `DT_FLOAT`.
        #[prost(int32, tag = "1")]
        pub dtype: i32,
        #[prost(message, optional, tag = "2")]
        pub tensor_shape: Option<TensorShapeProto>,
    }

    /// `tensorflow.TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "2")]
        pub dim: Vec<Dim>,
    }

    /// `TensorShapeProto.Dim`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dim {
        #[prost(int64, tag = "1")]
        pub size: i64,
    }

    /// `tensorflow.Summary.Image`: an encoded PNG and its size.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Image {
        #[prost(int32, tag = "1")]
        pub height: i32,
        #[prost(int32, tag = "2")]
        pub width: i32,
        /// 1 grayscale, 3 RGB, 4 RGBA.
        #[prost(int32, tag = "3")]
        pub colorspace: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub encoded_image_string: Vec<u8>,
    }
}

use proto::{Event, Kind, Summary, Value, What};

/// The start of every event file's name.
pub const EVENTS_PREFIX: &str = crate::run_dir::TENSORBOARD_EVENTS;

/// The CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Append `record` to `out` in TFRecord framing.
pub fn frame_record(record: &[u8], out: &mut Vec<u8>) {
    let len = (record.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(record);
    out.extend_from_slice(&masked_crc32c(record).to_le_bytes());
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn scalar(tag: &str, value: f64) -> Value {
    Value {
        tag: tag.to_string(),
        value: Some(Kind::SimpleValue(value as f32)),
        metadata: None,
    }
}

/// An event file being appended to (see the module docs).
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: File,
    /// Step and epoch records written so far.
    steps: usize,
    epochs: usize,
    /// Wall time of the previous write.
    last_time: f64,
}

impl EventWriter {
    /// A new event file in `dir` (made if missing), holding the file
    /// version event.
    pub fn create(dir: &Path) -> Result<Self> {
        let mut writer = Self::create_plain(dir)?;
        // A start at step 0: TensorBoard drops what it read of an earlier
        // file of this run (a resumed run writes its whole history again).
        let start_log = Event {
            wall_time: writer.last_time,
            step: 0,
            what: Some(What::SessionLog(proto::SessionLog {
                status: proto::SESSION_START,
            })),
        };
        writer.write_events(&[start_log])?;
        Ok(writer)
    }

    /// A new event file in `dir` (made if missing) holding only the file
    /// version event (no session start: for the HParams plugin's summaries
    /// beside a run's own file, see [`crate::hparams`]).
    pub fn create_plain(dir: &Path) -> Result<Self> {
        let io_err = |path: &Path, e: std::io::Error| TrainError::io(path, e);
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let start = now();
        let base = format!("{EVENTS_PREFIX}{}.cnn.{}", start as u64, std::process::id());
        let mut n = 0;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(io_err(&path, e)),
            }
        };
        let mut writer = EventWriter {
            path,
            file,
            steps: 0,
            epochs: 0,
            last_time: start,
        };
        let version = Event {
            wall_time: start,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        };
        writer.write_events(&[version])?;
        Ok(writer)
    }

    /// Append `events`, then flush them to disk.
    pub fn write_events(&mut self, events: &[Event]) -> Result<()> {
        let mut buf = Vec::new();
        for e in events {
            frame_record(&e.encode_to_vec(), &mut buf);
        }
        self.append(&buf)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the records of `history` not written yet (and, for each new
    /// epoch, the confusion-matrix picture at `confusion_png` when given),
    /// then flush them to disk.
    pub fn write(&mut self, history: &History, confusion_png: Option<&Path>) -> Result<()> {
        let time = now().max(self.last_time);
        let mut buf = Vec::new();
        let new_steps = history.steps.get(self.steps..).unwrap_or_default();
        let span = time - self.last_time;
        for (i, s) in new_steps.iter().enumerate() {
            let at = self.last_time + span * (i + 1) as f64 / new_steps.len() as f64;
            let values = vec![scalar("step/loss", s.loss), scalar("step/lr", s.lr)];
            push_event(&mut buf, at, s.step, values);
        }
        let new_epochs = history.epochs.get(self.epochs..).unwrap_or_default();
        for e in new_epochs {
            push_event(&mut buf, time, e.epoch as u64, epoch_values(e));
        }
        if let (Some(last), Some(png)) = (new_epochs.last(), confusion_png)
            && let Some(image) = png_image(png)?
        {
            let value = Value {
                tag: "val/confusion_matrix".into(),
                value: Some(Kind::Image(image)),
                metadata: None,
            };
            push_event(&mut buf, time, last.epoch as u64, vec![value]);
        }
        self.append(&buf)?;
        self.steps = history.steps.len();
        self.epochs = history.epochs.len();
        self.last_time = time;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let path = &self.path;
        let io_err = |e| TrainError::io(path, e);
        self.file.write_all(bytes).map_err(io_err)?;
        self.file.flush().map_err(io_err)?;
        self.file.sync_data().map_err(io_err)
    }
}

/// One event of summary `values` at `step`, framed onto `buf`.
fn push_event(buf: &mut Vec<u8>, wall_time: f64, step: u64, values: Vec<Value>) {
    let event = Event {
        wall_time,
        step: i64::try_from(step).unwrap_or(i64::MAX),
        what: Some(What::Summary(Summary { value: values })),
    };
    frame_record(&event.encode_to_vec(), buf);
}

/// An epoch's scalars: every column of its `metrics.csv` row.
fn epoch_values(e: &EpochRecord) -> Vec<Value> {
    fn split(values: &mut Vec<Value>, prefix: &str, m: &SplitMetrics) {
        for (name, v) in [
            ("loss", m.loss),
            ("accuracy", m.accuracy),
            ("precision_macro", m.precision_macro),
            ("recall_macro", m.recall_macro),
            ("f1_macro", m.f1_macro),
        ] {
            values.push(scalar(&format!("{prefix}/{name}"), v));
        }
    }
    let mut values = Vec::with_capacity(13);
    split(&mut values, "train", &e.train);
    if let Some(val) = &e.val {
        split(&mut values, "val", val);
    }
    values.push(scalar("epoch/lr", e.lr));
    values.push(scalar("epoch/seconds", e.seconds));
    values.push(scalar("epoch/images_per_sec", e.images_per_sec));
    values
}

/// The PNG at `path` as an image summary (its size from the PNG header);
/// `None` when there is no such file.
fn png_image(path: &Path) -> Result<Option<proto::Image>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    // The signature (8 bytes), the IHDR chunk's length and type (8), then
    // its width and height, big-endian.
    let header = bytes
        .get(..26)
        .filter(|h| h.starts_with(b"\x89PNG\r\n\x1a\n"));
    let Some(h) = header else {
        return Err(TrainError::bad_file(path, "is not a PNG image"));
    };
    let dim = |at: usize| i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    // Colour type 2 is RGB, 6 RGBA, 0 grayscale.
    let colorspace = match h[25] {
        0 => 1,
        6 => 4,
        _ => 3,
    };
    Ok(Some(proto::Image {
        width: dim(16),
        height: dim(20),
        colorspace,
        encoded_image_string: bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::StepRecord;

    /// CRC-32C's check value, and its mask as TensorBoard's own
    /// `masked_crc32c` gives it (tensorboard 2.21).
    #[test]
    fn masked_crc_matches_tensorboard() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }

    /// The framing of `hello`, byte for byte as TensorBoard's
    /// `RecordWriter` writes it.
    #[test]
    fn a_record_is_framed_as_tensorboard_frames_it() {
        let mut out = Vec::new();
        frame_record(b"hello", &mut out);
        let expected = [
            0x05, 0, 0, 0, 0, 0, 0, 0, 0xea, 0xb2, 0x04, 0x3e, b'h', b'e', b'l', b'l', b'o', 0xbb,
            0x1f, 0x1c, 0x19,
        ];
        assert_eq!(out, expected);
    }

    /// Events serialize as TensorBoard's `event_pb2.Event` does.
    #[test]
    fn events_encode_as_tensorboards_protos() {
        let event = Event {
            wall_time: 1.5,
            step: 2,
            what: Some(What::Summary(Summary {
                value: vec![scalar("a", 0.25)],
            })),
        };
        let hex: String = event
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "09000000000000f83f10022a0a0a080a0161150000803e");
        let version = Event {
            wall_time: 1.5,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        };
        let hex: String = version
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "09000000000000f83f1a0d627261696e2e4576656e743a32");
        let start = Event {
            wall_time: 1.5,
            step: 0,
            what: Some(What::SessionLog(proto::SessionLog {
                status: proto::SESSION_START,
            })),
        };
        let hex: String = start
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "09000000000000f83f3a020801");
    }

    /// Reading the file back: every record's CRCs check, and each write
    /// appends only the records not written before.
    #[test]
    fn writes_append_only_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        let step = |step: u64| StepRecord {
            step,
            epoch: 1,
            loss: 1.0 / step as f64,
            lr: 0.1,
            scaling: None,
        };
        let mut history = History {
            steps: vec![step(1), step(2)],
            epochs: Vec::new(),
        };
        writer.write(&history, None).unwrap();
        history.steps.push(step(3));
        writer.write(&history, None).unwrap();
        let bytes = std::fs::read(writer.path()).unwrap();
        let mut events = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc32c(&rest[..8]));
            let data = &rest[12..12 + len];
            let crc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(data));
            events.push(Event::decode(data).unwrap());
            rest = &rest[16 + len..];
        }
        let steps: Vec<i64> = events.iter().map(|e| e.step).collect();
        assert_eq!(steps, [0, 0, 1, 2, 3]);
        assert!(matches!(events[1].what, Some(What::SessionLog(_))));
        let Some(What::Summary(s)) = &events[4].what else {
            panic!("a summary expected: {:?}", events[4]);
        };
        assert_eq!(s.value[0], scalar("step/loss", 1.0 / 3.0));
        assert_eq!(s.value[1].value, Some(Kind::SimpleValue(0.1)));
        assert!(events.windows(2).all(|w| w[0].wall_time <= w[1].wall_time));
    }
}
