"""The fused Adam follows Keras' Adam step for step."""

import keras
import numpy as np

from gan_lab.optimizers import FusedAdam, build_optimizer


def test_fused_adam_matches_keras_adam():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(64, 32)).astype(np.float32)
    gradients = rng.normal(size=(5, 64, 32)).astype(np.float32)
    results = []
    for optimizer in (keras.optimizers.Adam(2e-4, beta_1=0.5), build_optimizer("adam", {"lr": 2e-4, "beta_1": 0.5, "beta_2": 0.999})):
        variable = keras.Variable(start)
        for gradient in gradients:
            optimizer.apply_gradients([(gradient, variable)])
        results.append(variable.numpy())
    assert isinstance(optimizer, FusedAdam)
    assert not np.array_equal(results[1], start)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-8)  # float32 rounding; the steps moved it ~1e-3
    assert np.abs(results[0] - start).max() > 5e-4
