#!/usr/bin/env python3
"""Writes the tiny .npy fixtures of Tests/DatasetsTests/NPYTests.swift with NumPy itself (numpy.save and
numpy.lib.format.write_array), so the Swift reader is tested on files NumPy wrote. Run from anywhere:
    python3 Tests/DatasetsTests/Fixtures/make_npy_fixtures.py
The .npy files are committed; rerun this only to change them."""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def save(name, array, version=None):
    with open(os.path.join(here, name), "wb") as f:
        if version is None:
            np.save(f, array)  # NumPy's default: format 1.0
        else:
            np.lib.format.write_array(f, array, version=version)


# Six examples of shape (2, 3); labels 0, 1, 2 twice.
features = (np.arange(36, dtype=np.float32) * 0.5 - 3).reshape(6, 2, 3)
save("features_f32.npy", features)
save("features_f32_v3.npy", features, version=(3, 0))
pixels = ((np.arange(36) * 37) % 256).astype(np.uint8).reshape(6, 2, 3)
pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255  # both ends of the byte range
save("features_u8_v2.npy", pixels, version=(2, 0))
save("features_u8_as_f32.npy", pixels.astype(np.float32) / 255)  # what the reader's uint8 scaling must equal
labels = np.array([0, 1, 2, 0, 1, 2])
save("labels_i64.npy", labels.astype(np.int64))
save("labels_i32.npy", labels.astype(np.int32))
save("labels_u8_v2.npy", labels.astype(np.uint8), version=(2, 0))

# Bad inputs, one problem each.
save("labels_out_of_range.npy", np.array([0, 1, 5, 0, 1, 2], dtype=np.int64))
save("labels_negative.npy", np.array([0, 1, 2, -1, 1, 2], dtype=np.int32))
save("labels_five.npy", labels[:5].astype(np.int64))
save("labels_f32.npy", labels.astype(np.float32))
save("features_f64.npy", features.astype(np.float64))
save("features_big_endian.npy", features.astype(">f4"))
save("features_fortran.npy", np.asfortranarray(features.reshape(6, 6)))
save("features_vector.npy", np.arange(6, dtype=np.float32))
save("test_features_3x2.npy", np.zeros((4, 3, 2), dtype=np.float32))
save("test_features_2x3.npy", np.ones((4, 2, 3), dtype=np.float32))
save("test_labels_i64.npy", np.array([2, 1, 0, 1], dtype=np.int64))
save("test_labels_class_3.npy", np.array([2, 1, 3, 1], dtype=np.int64))
save("records.npy", np.zeros(3, dtype=[("x", "<f4"), ("y", "<i8")]))

# Token streams for the GPT corpus.
save("tokens_u16.npy", (np.arange(300) % 300).astype(np.uint16))
save("tokens_i64.npy", (np.arange(300) % 300).astype(np.int64))
save("tokens_2d.npy", np.zeros((10, 30), dtype=np.uint16))
save("tokens_f32.npy", np.zeros(300, dtype=np.float32))
print(f"wrote fixtures to {here}")
