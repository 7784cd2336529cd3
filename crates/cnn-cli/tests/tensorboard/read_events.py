"""Read a directory's TensorBoard event files with TensorBoard's own reader
(EventAccumulator) and print every scalar and image as JSON:
{"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, width,
height, bytes], ...]}, "hparams": {tag: HParamsPluginData as JSON}} (the
HParams plugin's data, parsed with TensorBoard's own protos). Used by
crates/cnn-cli/tests/tensorboard.rs."""

import json
import sys

from google.protobuf import json_format
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

# 0 keeps every event (the default keeps a sample of 10,000 scalars).
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
try:
    hparams = acc.PluginTagToContent("hparams")
except KeyError:  # no summary of the plugin
    hparams = {}
print(
    json.dumps(
        {
            "scalars": {
                t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]
            },
            "images": {
                t: [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(t)]
                for t in tags["images"]
            },
            "hparams": {
                t: json_format.MessageToDict(plugin_data_pb2.HParamsPluginData.FromString(c))
                for t, c in hparams.items()
            },
        }
    )
)
