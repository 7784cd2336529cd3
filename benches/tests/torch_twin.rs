//! `xtask/torch_bench.py` builds the same networks as cnn's built-ins: its
//! `counts` command prints each model's parameter count and forward MACs
//! (`torch.utils.flop_counter`), which must equal `GraphSpec::counts`. The
//! Python with torch is `CNN_TORCH_PYTHON`; without it (or without torch)
//! the test skips, and fails instead under `CNN_REQUIRE_TORCH=1`.

use std::path::PathBuf;
use std::process::Command;

use cnn_core::models::{self, ModelOptions};

/// The Python with torch, or `None` after a skip.
fn python(test: &str) -> Option<PathBuf> {
    let Some(python) = std::env::var_os("CNN_TORCH_PYTHON").filter(|p| !p.is_empty()) else {
        cnn_testing::skip(
            test,
            "CNN_REQUIRE_TORCH",
            "CNN_TORCH_PYTHON is not set (a Python with torch, e.g. /work/torchvenv/bin/python)",
        );
        return None;
    };
    let imports = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !imports {
        cnn_testing::skip(
            test,
            "CNN_REQUIRE_TORCH",
            &format!("{} cannot import torch", python.to_string_lossy()),
        );
        return None;
    }
    Some(PathBuf::from(python))
}

#[test]
fn torch_bench_builds_the_same_networks_as_the_builtins() {
    let Some(python) = python("torch_bench_builds_the_same_networks_as_the_builtins") else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../xtask/torch_bench.py");
    let out = Command::new(python)
        .args([script, "counts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let twins = v["models"].as_object().unwrap();
    // Every network a workload trains, W8's airbench94 among them.
    for name in ["lenet5", "article", "vgg", "resnet20", "airbench94"] {
        let twin = &twins[name];
        let input: Vec<usize> = twin["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let spec = models::builtin(name, &ModelOptions::new(input, 10)).unwrap();
        let c = spec.counts().unwrap();
        assert_eq!(
            twin["params"].as_u64(),
            Some(c.params as u64),
            "{name} parameters"
        );
        assert_eq!(twin["macs"].as_u64(), Some(c.macs), "{name} MACs");
    }
    assert_eq!(twins["airbench94"]["params"], 1_972_792);
}
