"""The GAN as a ``keras.Model``: generator and discriminator trained together by its ``train_step``."""

from dataclasses import dataclass

import keras
import tensorflow as tf

from gan_lab.augment import augment
from gan_lab.config import Noise
from gan_lab.distribute import replica_seed, replica_share, step_results, sum_over_replicas
from gan_lab.losses import GANLoss
from gan_lab.penalties import gradient_penalty, mode_seeking_penalty, r1_penalty

METRICS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")
DIVERGENCE_PARTS = ("d_loss", "g_loss", "gradients")  # the bits of GAN.divergence, in order


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """Keras' seed generator whose seeds are each replica's own in a step on several replicas."""

    def next(self, ordered=True):
        return replica_seed(super().next(ordered))


@dataclass(frozen=True)
class Objective:
    """What ``train_step`` minimises: a loss pair, the penalties and terms switched on (weight 0: off),
    D's input augmentation, and the discriminator steps per generator step."""

    loss: GANLoss
    gradient_penalty: float = 0.0
    r1_gamma: float = 0.0
    mode_seeking: float = 0.0
    mutual_information: float = 0.0  # InfoGAN: weight of the code's cross-entropy in D's loss (trains its code head)
    generator_mutual_information: float = 0.0  # and in G's loss
    augment: str = ""
    d_steps: int = 1


class GAN(keras.Model):
    """Generator and discriminator trained together: per batch, ``d_steps - 1`` discriminator-only
    updates, then one simultaneous update of both (the TensorFlow DCGAN tutorial's step).

    ``fit`` on batches of ``(images, labels)``, or of images alone (unlabelled data), reports the epoch
    means of the D and G losses and of D's accuracy on real and on generated images. Built under a
    ``tf.distribute`` strategy's scope, each replica trains on its part of the batch with its own noise
    (``gan_lab/distribute.py``).
    """

    def __init__(self, generator, discriminator, latent_dim: int, noise: Noise, num_classes: int, seed: int,
                 ema: float = 0.0, code_dim: int = 0, self_conditioned: bool = False):
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
        self.code_dim = code_dim
        self.self_conditioned = self_conditioned  # D takes the code: G's for fakes, -1 (its own guess) for reals
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in METRICS]
        # The first step whose losses or gradients were not finite, and which (DIVERGENCE_PARTS bits); -1: none.
        self.divergence = keras.Variable([-1, 0], dtype="int64", trainable=False, name="divergence")

    def compile(self, g_optimizer, d_optimizer, objective: Objective, steps_per_execution: int = 1,
                jit_compile: bool = False):
        super().compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.objective = objective
        for optimizer, network in ((g_optimizer, self.generator), (d_optimizer, self.discriminator)):
            optimizer.build(network.trainable_weights)  # slots now: under a strategy's scope, and before a restore

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: the networks are built. (Under a strategy, Keras would trace the GAN's ``call``,
        which it has none of, on a batch it reduces over the replicas, which fails for a multi-worker one.)"""

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

    def _generator_inputs(self, batch_size):
        """(G's input, the continuous noise, the labels asked for or None, the InfoGAN codes or None).
        With mode seeking, the two halves of the batch are pairs with the same labels (or codes)."""
        noise = self._noise(batch_size)
        pairs = batch_size // 2 if self.objective.mode_seeking else batch_size

        def paired(values: int):
            drawn = keras.random.randint((pairs,), 0, values, seed=self.seed_generator)
            return tf.gather(drawn, tf.range(batch_size) % pairs)

        g_inputs, labels, codes = noise, None, None
        if self.num_classes:
            labels = paired(self.num_classes)
            g_inputs = [noise, labels]
        if self.code_dim:
            codes = paired(self.code_dim)
            g_inputs = tf.concat([noise, tf.one_hot(codes, self.code_dim, dtype=noise.dtype)], axis=1)
        return g_inputs, noise, labels, codes

    def _discriminate(self, images, labels):
        """(D's logits, its InfoGAN code logits or None) for images (and the labels they are to show)."""
        outputs = self.discriminator(images if labels is None else [images, labels], training=True)
        return (outputs[0], outputs[1]) if self.code_dim else (outputs, None)

    def _gan_losses(self, images, labels, fakes, fake_labels, noise, codes):
        """(d_loss, g_loss, real logits, fake logits): the loss pair, with the objective's penalties and terms."""
        objective = self.objective
        labels = labels if self.num_classes else None  # the data's labels reach D of conditional models only
        if self.self_conditioned:
            labels, fake_labels = tf.fill(tf.shape(images)[:1], -1), codes
        real_x, fake_x = images, fakes
        if objective.augment:  # the same policy on real and fake, differentiable, so G learns through it
            real_x = augment(images, objective.augment, self.seed_generator.next())
            fake_x = augment(fakes, objective.augment, self.seed_generator.next())
        real_logits, _ = self._discriminate(real_x, labels)
        fake_logits, code_logits = self._discriminate(fake_x, fake_labels)
        g_loss = objective.loss.generator_loss(real_logits, fake_logits)
        d_loss = objective.loss.discriminator_loss(real_logits, fake_logits)

        def critic(x):  # D on real labels: the penalties look at D around the real data
            return self._discriminate(x, labels)[0]

        if objective.gradient_penalty:
            d_loss += objective.gradient_penalty * gradient_penalty(critic, real_x, fake_x, self.seed_generator.next())
        if objective.r1_gamma:
            d_loss += objective.r1_gamma / 2 * r1_penalty(critic, real_x)
        if objective.mode_seeking:
            g_loss += objective.mode_seeking * mode_seeking_penalty(fakes, noise)
        if self.code_dim:  # InfoGAN: G and D's code head both make the code recoverable
            information = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=codes, logits=tf.cast(code_logits, tf.float32)))
            g_loss += objective.generator_mutual_information * information
            d_loss += objective.mutual_information * information
        if self.generator.losses:  # weight decay of the layers that have it
            g_loss += tf.add_n([tf.cast(x, tf.float32) for x in self.generator.losses])
        if self.discriminator.losses:
            d_loss += tf.add_n([tf.cast(x, tf.float32) for x in self.discriminator.losses])
        return d_loss, g_loss, real_logits, fake_logits

    def _discriminator_step(self, images, labels) -> None:
        """One update of D alone, on fresh fakes (critic steps before the joint one, ``d_steps > 1``)."""
        g_inputs, noise, fake_labels, codes = self._generator_inputs(tf.shape(images)[0])
        fakes = tf.stop_gradient(self.generator(g_inputs, training=True))
        with tf.GradientTape() as tape:
            d_loss = replica_share(self._gan_losses(images, labels, fakes, fake_labels, noise, codes)[0])
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

    def train_step(self, data):
        images, labels = data if isinstance(data, tuple) else (data, None)  # unlabelled data: images alone
        for _ in range(self.objective.d_steps - 1):
            self._discriminator_step(images, labels)
        g_inputs, noise, fake_labels, codes = self._generator_inputs(tf.shape(images)[0])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fakes = self.generator(g_inputs, training=True)
            d_loss, g_loss, real_logits, fake_logits = self._gan_losses(images, labels, fakes, fake_labels, noise, codes)
            g_share, d_share = replica_share(g_loss), replica_share(d_loss)
        g_grads = g_tape.gradient(g_share, self.generator.trainable_weights)
        d_grads = d_tape.gradient(d_share, self.discriminator.trainable_weights)
        self._record_divergence(d_loss, g_loss, g_grads + d_grads)
        self.g_optimizer.apply_gradients(zip(g_grads, self.generator.trainable_weights))
        self.d_optimizer.apply_gradients(zip(d_grads, self.discriminator.trainable_weights))
        if self.ema:  # warmed up like tf.train.ExponentialMovingAverage(num_updates=step)
            step = tf.cast(self.g_optimizer.iterations, tf.float32)
            rate = 1.0 - tf.minimum(self.ema, (1.0 + step) / (10.0 + step))
            for average, weight in zip(self.ema_generator.weights, self.generator.weights):
                # average -= rate * (average - weight), updated in place by one kernel (each replica's copy)
                tf.raw_ops.ResourceApplyGradientDescent(var=average.handle, alpha=rate, delta=average - weight)

        threshold = self.objective.loss.real_threshold
        values = (
            d_loss,
            g_loss,
            tf.reduce_mean(tf.cast(real_logits > threshold, tf.float32)),
            tf.reduce_mean(tf.cast(fake_logits <= threshold, tf.float32)),
        )
        for tracker, value in zip(self.trackers, values):
            tracker.update_state(value)
        return step_results({tracker.name: tracker.result() for tracker in self.trackers})

    def _record_divergence(self, d_loss, g_loss, grads) -> None:
        """Note the first non-finite step on the device; read by ``Checkpointer`` once per fused call."""
        gradient_sum = tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])  # NaN/Inf propagate
        # summed over replicas, so that every replica notes what any one saw
        values = sum_over_replicas([tf.cast(x, tf.float32) for x in (d_loss, g_loss, gradient_sum)])
        bits = [tf.cast(~tf.math.is_finite(x), tf.int64) * 2**i for i, x in enumerate(values)]
        parts = tf.add_n(bits)
        step = tf.cast(self.g_optimizer.iterations, tf.int64) + 1  # iterations counts the steps before this one
        first = (self.divergence[0] < 0) & (parts > 0)
        self.divergence.assign(tf.where(first, tf.stack([step, parts]), self.divergence))

    def training_state(self) -> list:
        """Every variable training changes, in a fixed order: weights and batch-norm statistics of G,
        D and the EMA generator, the RNG states (noise, dropout), both optimizers (slots, step
        counts) and the epoch's running metrics."""
        return [*self.variables, *self.g_optimizer.variables, *self.d_optimizer.variables, *self.tracker_variables]

    @property
    def tracker_variables(self) -> list:
        """The running sums and counts behind the epoch metrics."""
        return [v for tracker in self.trackers for v in tracker.variables]
