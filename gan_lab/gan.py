"""The GAN as a ``keras.Model``: generator and discriminator trained together by its ``train_step``."""

import keras
import tensorflow as tf

from gan_lab.config import Noise
from gan_lab.losses import GANLoss

METRICS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")
DIVERGENCE_PARTS = ("d_loss", "g_loss", "gradients")  # the bits of GAN.divergence, in order


class GAN(keras.Model):
    """Generator and discriminator trained together, one simultaneous update per batch.

    ``fit`` on batches of ``(images, labels)`` reports the epoch means of the D and G losses
    and of D's accuracy on real and on generated images.
    """

    def __init__(
        self, generator, discriminator, latent_dim: int, noise: Noise, num_classes: int, seed: int, ema: float = 0.0
    ):
        super().__init__(name="gan")
        self.generator = generator
        self.ema = ema
        # Exponential moving average of the generator's weights (0: off); samples come from it.
        self.ema_generator = keras.models.clone_model(generator) if ema else generator
        if ema:
            self.ema_generator.set_weights(generator.get_weights())
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.noise = noise
        self.num_classes = num_classes
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]
        # The first step whose losses or gradients were not finite, and which (DIVERGENCE_PARTS bits); -1: none.
        self.divergence = keras.Variable([-1, 0], dtype="int64", trainable=False, name="divergence")

    def compile(self, g_optimizer, d_optimizer, loss: GANLoss, steps_per_execution: int = 1, jit_compile: bool = False):
        super().compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.gan_loss = loss

    @property
    def metrics(self):
        return self.trackers

    @property
    def train_steps(self) -> int:
        """Training steps taken so far."""
        return int(self.g_optimizer.iterations.numpy())

    def _noise(self, batch_size):
        shape = (batch_size, self.latent_dim)
        if self.noise == Noise.uniform:
            return keras.random.uniform(shape, -1.0, 1.0, seed=self.seed_generator)
        return keras.random.normal(shape, seed=self.seed_generator)

    def train_step(self, data):
        images, labels = data
        batch_size = tf.shape(images)[0]
        noise = self._noise(batch_size)
        if self.num_classes:
            fake_labels = keras.random.randint((batch_size,), 0, self.num_classes, seed=self.seed_generator)
            g_inputs, real_inputs = [noise, fake_labels], lambda x: [x, labels]
            fake_inputs = lambda x: [x, fake_labels]  # noqa: E731
        else:
            g_inputs, real_inputs, fake_inputs = noise, (lambda x: x), (lambda x: x)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fakes = self.generator(g_inputs, training=True)
            real_logits = self.discriminator(real_inputs(images), training=True)
            fake_logits = self.discriminator(fake_inputs(fakes), training=True)
            g_loss = self.gan_loss.generator_loss(fake_logits)
            d_loss = self.gan_loss.discriminator_loss(real_logits, fake_logits)
        g_grads = g_tape.gradient(g_loss, self.generator.trainable_weights)
        d_grads = d_tape.gradient(d_loss, self.discriminator.trainable_weights)
        self._record_divergence(d_loss, g_loss, g_grads + d_grads)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_weights))
        if self.ema:  # warmed up like tf.train.ExponentialMovingAverage(num_updates=step)
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            rate = 1.0 - tf.minimum(self.ema, (1.0 + step) / (10.0 + step))
            for average, weight in zip(self.ema_generator.weights, self.generator.weights):
                # average -= rate * (average - weight), updated in place by one kernel
                tf.raw_ops.ResourceApplyGradientDescent(var=average.handle, alpha=rate, delta=average - weight)

        threshold = self.gan_loss.real_threshold
        values = (
            d_loss,
            g_loss,
            tf.reduce_mean(tf.cast(real_logits > threshold, tf.float32)),
            tf.reduce_mean(tf.cast(fake_logits <= threshold, tf.float32)),
        )
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def _record_divergence(self, d_loss, g_loss, grads) -> None:
        """Note the first non-finite step on the device; read by ``Checkpointer`` once per fused call."""
        gradient_sum = tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])  # NaN/Inf propagate
        bits = [tf.cast(~tf.math.is_finite(tf.cast(x, tf.float32)), tf.int64) * 2**i
                for i, x in enumerate((d_loss, g_loss, gradient_sum))]
        parts = tf.add_n(bits)
        step = tf.cast(self.g_optimizer.iterations, tf.int64) + 1  # iterations counts the steps before this one
        first = (self.divergence[0] < 0) & (parts > 0)
        self.divergence.assign(tf.where(first, tf.stack([step, parts]), self.divergence))

    def training_state(self) -> list:
        """Every variable training changes, in a fixed order: weights and batch-norm statistics of G,
        D and the EMA generator, the RNG states (noise, dropout), both optimizers (slots, step
        counts) and the epoch's running metrics."""
        for optimizer, network in ((self.g_optimizer, self.generator), (self.d_optimizer, self.discriminator)):
            if not optimizer.built:  # slots must exist before a restore
                optimizer.build(network.trainable_weights)
        return [*self.variables, *self.g_optimizer.variables, *self.d_optimizer.variables, *self.tracker_variables]

    @property
    def tracker_variables(self) -> list:
        """The running sums and counts behind the epoch metrics."""
        return [v for tracker in self.trackers for v in tracker.variables]
