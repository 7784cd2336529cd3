//! `inspect.html`: one self-contained page (the PNGs embedded as base64
//! `data:` URIs, no script, nothing fetched) rendered from a minijinja
//! template with HTML auto-escaping, so a class name or file name shows as
//! written whatever characters it holds.

use std::collections::BTreeMap;

use minijinja::{Environment, Value, context};

use super::files::Record;
use crate::report::base64;

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ r.title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; max-width: 260px; }
img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
table { border-collapse: collapse; display: inline-table; vertical-align: top; margin-right: 2em; }
td, th { padding: 2px 8px; text-align: left; font-size: 0.9em; }
.bar { background: #4878d0; height: 10px; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>{{ r.title }}</h1>
<p class="note">Weights <code>{{ r.weights }}</code>. Grad-CAM (Selvaraju et al. 2017): the layer's
channels weighted by the spatial mean of the class logit's gradient, summed, ReLU, upsampled
bilinearly and laid over the image. Saliency: the largest absolute gradient of the class logit
over the input's channels. Gradients of an evaluation-mode forward. Feature maps: each channel
scaled to its own range.</p>
{% for im in r.images %}
<h2>Image {{ loop.index }}: {{ im.source }}{% if im.label_name is not none %} (label {{ im.label_name }}){% endif %}</h2>
<figure><img src="{{ png[im.input] }}" alt="input"><figcaption>input</figcaption></figure>
<figure><img src="{{ png[im.gradcam.file] }}" alt="Grad-CAM"><figcaption>Grad-CAM for class {{ im.gradcam.class_name }} at {{ im.gradcam.layer }} ({{ im.gradcam.layer_shape|join("x") }})</figcaption></figure>
<figure><img src="{{ png[im.saliency] }}" alt="saliency"><figcaption>saliency for class {{ im.gradcam.class_name }}</figcaption></figure>
<table>
<tr><th>class</th><th>probability</th><th></th></tr>
{% for p in im.top %}<tr><td>{{ p.name }}</td><td>{{ p.percent }}</td><td><div class="bar" style="width: {{ p.bar_px }}px"></div></td></tr>
{% endfor %}</table>
<h3>Feature maps</h3>
{% for m in im.feature_maps %}<figure><img src="{{ png[m.file] }}" alt="{{ m.node }}"><figcaption>{{ m.node }} ({{ m.kind }}, {{ m.shape|join("x") }})</figcaption></figure>
{% endfor %}
{% endfor %}
{% if r.filters %}<h2>First-layer filters</h2>
<figure><img src="{{ png[r.filters] }}" alt="filters"><figcaption>one tile per output channel, each scaled to its own range</figcaption></figure>
{% endif %}
</body>
</html>
"#;

/// The page for `record`, with `pngs` (file name to bytes) embedded.
pub(super) fn render(
    record: &Record,
    pngs: &BTreeMap<String, Vec<u8>>,
) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // The `.html` name turns HTML auto-escaping on.
    env.add_template("inspect.html", TEMPLATE)?;
    // Our own base64: only letters, digits, `+`, `/` and `=`, safe in an
    // attribute without escaping.
    let png: BTreeMap<&str, Value> = pngs
        .iter()
        .map(|(name, bytes)| {
            let uri = format!("data:image/png;base64,{}", base64(bytes));
            (name.as_str(), Value::from_safe_string(uri))
        })
        .collect();
    env.get_template("inspect.html")?
        .render(context! { r => Value::from_serialize(record), png => png })
}
