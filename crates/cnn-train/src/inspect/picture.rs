//! The pictures of `cnn inspect`: RGB canvases, the colour maps (grey,
//! OpenCV's jet for Grad-CAM as pytorch-grad-cam draws it, "hot" for
//! saliency), tiles enlarged by pixel repetition, grids of tiles and PNG
//! encoding.

use image::ImageEncoder;

/// An RGB picture, row-major, three bytes a pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// The background between the tiles of a grid.
const GAP_COLOUR: [u8; 3] = [255, 255, 255];

fn byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Grey level `v` in [0, 1].
pub fn grey(v: f32) -> [u8; 3] {
    let b = byte(v);
    [b, b, b]
}

/// OpenCV's `COLORMAP_JET` (blue, cyan, yellow, red) at `v` in [0, 1].
pub fn jet(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let channel = |centre: f32| byte(1.5 - (4.0 * v - centre).abs());
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The "hot" colour map (black, red, yellow, white) at `v` in [0, 1].
pub fn hot(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    [byte(3.0 * v), byte(3.0 * v - 1.0), byte(3.0 * v - 2.0)]
}

impl Canvas {
    /// A `width` x `height` canvas filled with `colour`.
    pub fn filled(width: usize, height: usize, colour: [u8; 3]) -> Self {
        Canvas {
            width,
            height,
            rgb: colour.repeat(width * height),
        }
    }

    /// `values` (`[h, w]`, each in [0, 1]) through `colour`, each pixel
    /// repeated `scale` x `scale` times.
    pub fn from_map(
        values: &[f32],
        h: usize,
        w: usize,
        scale: usize,
        colour: fn(f32) -> [u8; 3],
    ) -> Self {
        let pixels: Vec<[u8; 3]> = values.iter().map(|&v| colour(v)).collect();
        Self::from_pixels(&pixels, h, w, scale)
    }

    /// `pixels` (`[h, w]`), each repeated `scale` x `scale` times.
    pub fn from_pixels(pixels: &[[u8; 3]], h: usize, w: usize, scale: usize) -> Self {
        let scale = scale.max(1);
        let mut c = Canvas::filled(w * scale, h * scale, GAP_COLOUR);
        for y in 0..h * scale {
            for x in 0..w * scale {
                c.put(x, y, pixels[(y / scale) * w + x / scale]);
            }
        }
        c
    }

    fn put(&mut self, x: usize, y: usize, colour: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.rgb[i..i + 3].copy_from_slice(&colour);
    }

    fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// `tile` drawn with its top left corner at (`x0`, `y0`).
    fn draw(&mut self, tile: &Canvas, x0: usize, y0: usize) {
        for y in 0..tile.height {
            for x in 0..tile.width {
                self.put(x0 + x, y0 + y, tile.get(x, y));
            }
        }
    }

    /// `self` blended with `other` (same size): `weight * self + (1 -
    /// weight) * other`, per channel.
    pub fn blend(&self, other: &Canvas, weight: f32) -> Canvas {
        let rgb = self
            .rgb
            .iter()
            .zip(&other.rgb)
            .map(|(&a, &b)| {
                (weight * f32::from(a) + (1.0 - weight) * f32::from(b))
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        Canvas {
            width: self.width,
            height: self.height,
            rgb,
        }
    }

    /// The canvas as PNG bytes.
    pub fn png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes).write_image(
            &self.rgb,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(bytes)
    }
}

/// `tiles` (all the same size) in rows of `columns`, `gap` pixels apart.
pub fn grid(tiles: &[Canvas], columns: usize, gap: usize) -> Canvas {
    let (tw, th) = tiles.first().map_or((0, 0), |t| (t.width, t.height));
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns);
    let mut c = Canvas::filled(
        columns * tw + (columns + 1) * gap,
        rows * th + (rows + 1) * gap,
        GAP_COLOUR,
    );
    for (k, tile) in tiles.iter().enumerate() {
        let (row, col) = (k / columns, k % columns);
        c.draw(tile, gap + col * (tw + gap), gap + row * (th + gap));
    }
    c
}

/// How many times to repeat each pixel of an `h` x `w` picture so that its
/// longer side reaches at least `target` pixels.
pub fn scale_for(h: usize, w: usize, target: usize) -> usize {
    target.div_ceil(h.max(w).max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_maps_run_from_their_dark_to_their_bright_end() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(hot(0.0), [0, 0, 0]);
        assert_eq!(hot(1.0), [255, 255, 255]);
        assert_eq!(grey(0.5), [128, 128, 128]);
    }

    #[test]
    fn tiles_are_enlarged_and_laid_out_in_a_grid() {
        let tile = Canvas::from_map(&[0.0, 1.0], 1, 2, 2, grey);
        assert_eq!((tile.width, tile.height), (4, 2));
        assert_eq!(tile.get(1, 1), [0, 0, 0]);
        assert_eq!(tile.get(2, 0), [255, 255, 255]);
        let g = grid(&[tile.clone(), tile.clone(), tile], 2, 1);
        // Two columns and two rows of 4x2 tiles, one pixel apart.
        assert_eq!((g.width, g.height), (2 * 4 + 3, 2 * 2 + 3));
        assert_eq!(g.get(1, 1), [0, 0, 0]);
        assert_eq!(g.get(6, 1), [0, 0, 0]);
        assert_eq!(g.get(1, 4), [0, 0, 0]);
        assert_eq!(g.get(5, 1), GAP_COLOUR);
        // No fourth tile.
        assert_eq!(g.get(6, 4), GAP_COLOUR);
        let png = g.png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn blending_weighs_each_channel() {
        let a = Canvas::filled(1, 1, [200, 0, 100]);
        let b = Canvas::filled(1, 1, [0, 100, 100]);
        assert_eq!(a.blend(&b, 0.5).rgb, vec![100, 50, 100]);
        assert_eq!(scale_for(28, 28, 224), 8);
        assert_eq!(scale_for(5, 3, 48), 10);
    }
}
