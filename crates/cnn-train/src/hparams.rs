//! TensorBoard's HParams plugin for a comparison (`cnn compare
//! --tensorboard`): the experiment (the varied hyperparameters with their
//! values, and the metrics) in an event file at the comparison's
//! TensorBoard root, and per run a session start (its values of the varied
//! hyperparameters, its variant as the session group) and a session end
//! (its status) beside the run's own event file. TensorBoard's HParams tab
//! then lists the runs with their hyperparameters and the final values of
//! the metrics, read from the runs' scalars (`val/accuracy`, ...).
//!
//! The protos are the messages of TensorBoard's
//! `tensorboard/plugins/hparams/{api,plugin_data}.proto` (and
//! `google.protobuf.Value`) that this needs, written out as prost structs
//! with their field numbers, like [`crate::tensorboard::proto`]. A summary
//! value carries them as plugin data (`plugin_name = "hparams"`) under the
//! tags `_hparams_/experiment`, `_hparams_/session_start_info` and
//! `_hparams_/session_end_info`, with an empty float tensor as its value,
//! as TensorBoard's `hparams.summary_v2` writes them (its server keeps
//! tensor values only).

use std::collections::BTreeMap;
use std::path::Path;

use prost::Message;

use crate::error::Result;
use crate::tensorboard::EventWriter;
use crate::tensorboard::proto::{
    Dim, Event, Kind, PluginData, Summary, SummaryMetadata, TensorProto, TensorShapeProto, Value,
    What,
};

/// The hparams plugin's messages.
pub mod proto {
    use std::collections::BTreeMap;

    /// `google.protobuf.Value` (the kinds used here).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PbValue {
        #[prost(oneof = "PbKind", tags = "2, 3, 4")]
        pub kind: Option<PbKind>,
    }

    /// `google.protobuf.Value.kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum PbKind {
        #[prost(double, tag = "2")]
        Number(f64),
        #[prost(string, tag = "3")]
        Text(String),
        #[prost(bool, tag = "4")]
        Bool(bool),
    }

    /// `google.protobuf.ListValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<PbValue>,
    }

    /// `tensorboard.hparams.HParamsPluginData`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PluginDataProto {
        #[prost(int32, tag = "1")]
        pub version: i32,
        #[prost(oneof = "Data", tags = "2, 3, 4")]
        pub data: Option<Data>,
    }

    /// `HParamsPluginData.data`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "2")]
        Experiment(Experiment),
        #[prost(message, tag = "3")]
        SessionStartInfo(SessionStartInfo),
        #[prost(message, tag = "4")]
        SessionEndInfo(SessionEndInfo),
    }

    /// `tensorboard.hparams.Experiment`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Experiment {
        #[prost(string, tag = "1")]
        pub description: String,
        #[prost(double, tag = "3")]
        pub time_created_secs: f64,
        #[prost(message, repeated, tag = "4")]
        pub hparam_infos: Vec<HParamInfo>,
        #[prost(message, repeated, tag = "5")]
        pub metric_infos: Vec<MetricInfo>,
        #[prost(string, tag = "6")]
        pub name: String,
    }

    /// `tensorboard.hparams.DataType`.
    pub const DATA_TYPE_STRING: i32 = 1;
    pub const DATA_TYPE_BOOL: i32 = 2;
    pub const DATA_TYPE_FLOAT64: i32 = 3;

    /// `tensorboard.hparams.HParamInfo` (with a discrete domain).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HParamInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int32, tag = "4")]
        pub r#type: i32,
        #[prost(message, optional, tag = "5")]
        pub domain_discrete: Option<ListValue>,
    }

    /// `tensorboard.hparams.MetricName`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricName {
        #[prost(string, tag = "1")]
        pub group: String,
        #[prost(string, tag = "2")]
        pub tag: String,
    }

    /// `tensorboard.hparams.MetricInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricInfo {
        #[prost(message, optional, tag = "1")]
        pub name: Option<MetricName>,
        #[prost(string, tag = "3")]
        pub display_name: String,
    }

    /// `tensorboard.hparams.SessionStartInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionStartInfo {
        #[prost(btree_map = "string, message", tag = "1")]
        pub hparams: BTreeMap<String, PbValue>,
        #[prost(string, tag = "4")]
        pub group_name: String,
        #[prost(double, tag = "5")]
        pub start_time_secs: f64,
    }

    /// `tensorboard.hparams.Status`.
    pub const STATUS_SUCCESS: i32 = 1;
    pub const STATUS_FAILURE: i32 = 2;

    /// `tensorboard.hparams.SessionEndInfo`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SessionEndInfo {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(double, tag = "2")]
        pub end_time_secs: f64,
    }
}

use proto::{Data, PbKind, PbValue, PluginDataProto};

/// The plugin's name and the version of its data.
const PLUGIN_NAME: &str = "hparams";
const PLUGIN_VERSION: i32 = 0;

/// The metrics the HParams tab shows: the runs' scalar tags.
pub const METRICS: &[&str] = &[
    "val/accuracy",
    "val/loss",
    "val/f1_macro",
    "train/accuracy",
    "train/loss",
];

/// A hyperparameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl HValue {
    /// A TOML value as the HParams tab shows it (arrays and tables as
    /// their TOML text).
    pub fn from_toml(v: &toml::Value) -> Self {
        match v {
            toml::Value::Integer(i) => HValue::Number(*i as f64),
            toml::Value::Float(f) => HValue::Number(*f),
            toml::Value::Boolean(b) => HValue::Bool(*b),
            toml::Value::String(s) => HValue::Text(s.clone()),
            other => HValue::Text(other.to_string()),
        }
    }

    fn proto(&self) -> PbValue {
        PbValue {
            kind: Some(match self {
                HValue::Number(x) => PbKind::Number(*x),
                HValue::Text(s) => PbKind::Text(s.clone()),
                HValue::Bool(b) => PbKind::Bool(*b),
            }),
        }
    }

    fn data_type(&self) -> i32 {
        match self {
            HValue::Number(_) => proto::DATA_TYPE_FLOAT64,
            HValue::Text(_) => proto::DATA_TYPE_STRING,
            HValue::Bool(_) => proto::DATA_TYPE_BOOL,
        }
    }
}

/// One run of the comparison as the plugin sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its variant's label: runs of one variant (repeats) form a group.
    pub group: String,
    pub hparams: BTreeMap<String, HValue>,
    /// Whether it completed (or stopped early) rather than failed.
    pub succeeded: bool,
}

fn plugin_event(tag: &str, data: Data, wall_time: f64) -> Event {
    let content = PluginDataProto {
        version: PLUGIN_VERSION,
        data: Some(data),
    }
    .encode_to_vec();
    Event {
        wall_time,
        step: 0,
        what: Some(What::Summary(Summary {
            value: vec![Value {
                tag: tag.to_string(),
                // hparams' `metadata.NULL_TENSOR`: float, shape [0].
                value: Some(Kind::Tensor(TensorProto {
                    dtype: 1,
                    tensor_shape: Some(TensorShapeProto {
                        dim: vec![Dim { size: 0 }],
                    }),
                })),
                metadata: Some(SummaryMetadata {
                    plugin_data: Some(PluginData {
                        plugin_name: PLUGIN_NAME.into(),
                        content,
                    }),
                }),
            }],
        })),
    }
}

/// The experiment summary: every hyperparameter that `sessions` set, with
/// the values they take (in order of appearance), and [`METRICS`].
pub fn experiment_event(name: &str, sessions: &[Session], wall_time: f64) -> Event {
    let mut infos: Vec<(String, Vec<HValue>)> = Vec::new();
    for s in sessions {
        for (key, value) in &s.hparams {
            let i = match infos.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    infos.push((key.clone(), Vec::new()));
                    infos.len() - 1
                }
            };
            if !infos[i].1.contains(value) {
                infos[i].1.push(value.clone());
            }
        }
    }
    let hparam_infos = infos
        .into_iter()
        .map(|(name, values)| {
            // One type for the column; mixed kinds show as text.
            let ty = values[0].data_type();
            let same = values.iter().all(|v| v.data_type() == ty);
            let values: Vec<PbValue> = values
                .iter()
                .map(|v| match v {
                    HValue::Number(x) if !same => HValue::Text(x.to_string()).proto(),
                    HValue::Bool(b) if !same => HValue::Text(b.to_string()).proto(),
                    v => v.proto(),
                })
                .collect();
            proto::HParamInfo {
                name,
                r#type: if same { ty } else { proto::DATA_TYPE_STRING },
                domain_discrete: Some(proto::ListValue { values }),
            }
        })
        .collect();
    let metric_infos = METRICS
        .iter()
        .map(|tag| proto::MetricInfo {
            name: Some(proto::MetricName {
                group: String::new(),
                tag: tag.to_string(),
            }),
            display_name: tag.to_string(),
        })
        .collect();
    let experiment = proto::Experiment {
        description: format!("cnn compare: {name}"),
        time_created_secs: wall_time,
        hparam_infos,
        metric_infos,
        name: name.to_string(),
    };
    plugin_event(
        "_hparams_/experiment",
        Data::Experiment(experiment),
        wall_time,
    )
}

/// A run's session start and end.
pub fn session_events(s: &Session, wall_time: f64) -> [Event; 2] {
    let start = proto::SessionStartInfo {
        hparams: s
            .hparams
            .iter()
            .map(|(k, v)| (k.clone(), v.proto()))
            .collect(),
        group_name: s.group.clone(),
        start_time_secs: wall_time,
    };
    let end = proto::SessionEndInfo {
        status: if s.succeeded {
            proto::STATUS_SUCCESS
        } else {
            proto::STATUS_FAILURE
        },
        end_time_secs: wall_time,
    };
    [
        plugin_event(
            "_hparams_/session_start_info",
            Data::SessionStartInfo(start),
            wall_time,
        ),
        plugin_event(
            "_hparams_/session_end_info",
            Data::SessionEndInfo(end),
            wall_time,
        ),
    ]
}

/// The sessions of a comparison's runs that ran (over or failed): each
/// run's directory (relative to the comparison) and its session, with
/// every key that a variant changes (its value in the run's configuration)
/// and, with repeats, the seed.
pub fn comparison_sessions(manifest: &crate::compare::Manifest) -> Vec<(String, Session)> {
    let norm = |k: &str| k.replace('-', "_");
    let mut keys: Vec<String> = Vec::new();
    for v in &manifest.variants {
        for (k, _) in &v.overrides {
            if !keys.contains(&norm(k)) {
                keys.push(norm(k));
            }
        }
    }
    let tables: Vec<Option<toml::Table>> = manifest
        .variants
        .iter()
        .map(|v| toml::Table::try_from(&v.config).ok())
        .collect();
    manifest
        .runs
        .iter()
        .filter(|r| !matches!(r.status.as_str(), "pending" | "interrupted"))
        .map(|r| {
            let v = &manifest.variants[r.variant];
            let mut hparams = BTreeMap::new();
            for k in &keys {
                let value = tables[r.variant]
                    .as_ref()
                    .and_then(|t| t.get(k))
                    .map(HValue::from_toml)
                    .or_else(|| {
                        v.overrides
                            .iter()
                            .find(|(given, _)| norm(given) == *k)
                            .map(|(_, s)| HValue::Text(s.clone()))
                    });
                if let Some(value) = value {
                    hparams.insert(k.clone(), value);
                }
            }
            if manifest.repeats > 1 {
                hparams.insert("seed".to_string(), HValue::Number(r.seed as f64));
            }
            let session = Session {
                group: v.label.clone(),
                hparams,
                succeeded: matches!(r.status.as_str(), "completed" | "early_stopped"),
            };
            (r.dir.clone(), session)
        })
        .collect()
}

/// Write the experiment into `root` and each session into its run's
/// directory (`runs`, beside `sessions`), each in an event file of its
/// own (without a session-log start, which would make TensorBoard drop the
/// run's scalars).
pub fn write_hparams(root: &Path, name: &str, runs: &[(&Path, Session)]) -> Result<()> {
    let now = crate::tensorboard::now();
    let sessions: Vec<Session> = runs.iter().map(|(_, s)| s.clone()).collect();
    EventWriter::create_plain(root)?.write_events(&[experiment_event(name, &sessions, now)])?;
    for (dir, s) in runs {
        EventWriter::create_plain(dir)?.write_events(&session_events(s, now))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(lr: f64, opt: &str) -> Session {
        Session {
            group: format!("lr={lr}, optimizer={opt}"),
            hparams: BTreeMap::from([
                ("lr".to_string(), HValue::Number(lr)),
                ("optimizer".to_string(), HValue::Text(opt.into())),
            ]),
            succeeded: true,
        }
    }

    fn data(e: &Event) -> (String, PluginDataProto) {
        let Some(What::Summary(s)) = &e.what else {
            panic!("not a summary")
        };
        let v = &s.value[0];
        let meta = v.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap();
        assert_eq!(meta.plugin_name, "hparams");
        let Some(Kind::Tensor(t)) = &v.value else {
            panic!("no tensor")
        };
        assert_eq!(
            (t.dtype, t.tensor_shape.as_ref().unwrap().dim[0].size),
            (1, 0)
        );
        (
            v.tag.clone(),
            PluginDataProto::decode(meta.content.as_slice()).unwrap(),
        )
    }

    #[test]
    fn the_experiment_lists_each_hyperparameters_values_and_the_metrics() {
        let sessions = [
            session(0.1, "sgd"),
            session(0.01, "sgd"),
            session(0.1, "adam"),
        ];
        let (tag, d) = data(&experiment_event("x", &sessions, 5.0));
        assert_eq!(tag, "_hparams_/experiment");
        let Some(Data::Experiment(e)) = d.data else {
            panic!("no experiment")
        };
        assert_eq!(e.hparam_infos.len(), 2);
        let lr = &e.hparam_infos[0];
        assert_eq!(
            (lr.name.as_str(), lr.r#type),
            ("lr", proto::DATA_TYPE_FLOAT64)
        );
        let values = &lr.domain_discrete.as_ref().unwrap().values;
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].kind, Some(PbKind::Number(0.01)));
        assert_eq!(e.hparam_infos[1].r#type, proto::DATA_TYPE_STRING);
        let tags: Vec<&str> = e
            .metric_infos
            .iter()
            .map(|m| m.name.as_ref().unwrap().tag.as_str())
            .collect();
        assert_eq!(tags, METRICS);
    }

    #[test]
    fn a_session_has_its_values_its_group_and_its_status() {
        let mut s = session(0.5, "adam");
        s.succeeded = false;
        let [start, end] = session_events(&s, 7.0);
        let (tag, d) = data(&start);
        assert_eq!(tag, "_hparams_/session_start_info");
        let Some(Data::SessionStartInfo(info)) = d.data else {
            panic!("no start")
        };
        assert_eq!(info.group_name, "lr=0.5, optimizer=adam");
        assert_eq!(info.hparams["lr"].kind, Some(PbKind::Number(0.5)));
        assert_eq!(
            info.hparams["optimizer"].kind,
            Some(PbKind::Text("adam".into()))
        );
        let (tag, d) = data(&end);
        assert_eq!(tag, "_hparams_/session_end_info");
        let Some(Data::SessionEndInfo(info)) = d.data else {
            panic!("no end")
        };
        assert_eq!(info.status, proto::STATUS_FAILURE);
    }
}
