"""Read a directory's TensorBoard event files with TensorBoard's own reader
(EventAccumulator) and print every scalar and image as JSON:
{"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, width,
height, bytes], ...]}}. Used by crates/cnn-cli/tests/tensorboard.rs."""

import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# 0 keeps every event (the default keeps a sample of 10,000 scalars).
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
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
        }
    )
)
