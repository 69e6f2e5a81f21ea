"""The paper's controller: a one-layer LSTM that emits the 2 x 5B decisions one after another.

Each step embeds the previous decision (plus the step number), advances an LSTM cell (100 units in the paper) and reads a
softmax head for the decision's type (input, op or combine). Choices that are not valid at a step
are masked out before the softmax. All weights start uniform in [-0.1, 0.1] (paper, appendix A.3).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .space import TYPES, SearchSpace


class Controller(keras.Model):
    """Samples architectures of a :class:`SearchSpace` and scores their log-probabilities.

    Args:
        space: the search space.
        units: LSTM units (paper: 100).
        init_range: weights start uniform in ``[-init_range, init_range]`` (paper: 0.1).
        temperature: logits are divided by it before the softmax (ENAS uses 5 for sampling).
        tanh_constant: if set, logits become ``tanh_constant * tanh(logits)`` (ENAS-style
            squashing, which keeps the policy from collapsing early); ``None`` disables it.
        seed: seed of the initial weights and of the sampling generator.
    """

    def __init__(self, space: SearchSpace, units: int = 100, init_range: float = 0.1,
                 temperature: float = 1.0, tanh_constant: float | None = None, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.space = space
        self.units = units
        self.temperature = float(temperature)
        self.tanh_constant = tanh_constant
        init = lambda k: keras.initializers.RandomUniform(-init_range, init_range, seed=seed + k)
        widths = [space.width(t) for t in TYPES]
        self._offsets = dict(zip(TYPES, np.cumsum([1] + widths[:-1]).tolist()))
        # Token 0 starts the sequence; then one token per (type, choice).
        self.embedding = layers.Embedding(1 + sum(widths), units, embeddings_initializer=init(1))
        # A learned embedding of the step number, added to the previous decision's. Without it the
        # LSTM sees the same inputs for every block and, measured on the synthetic reward, learns
        # one compromise block repeated ten times instead of ten different blocks.
        self.step_embedding = layers.Embedding(space.num_decisions, units, embeddings_initializer=init(11))
        self.lstm = layers.LSTMCell(units, kernel_initializer=init(2), recurrent_initializer=init(3),
                                    bias_initializer=init(4))
        self.input_head = layers.Dense(space.width("input"), kernel_initializer=init(5), bias_initializer=init(6))
        self.op_head = layers.Dense(space.width("op"), kernel_initializer=init(7), bias_initializer=init(8))
        self.combine_head = layers.Dense(space.width("combine"), kernel_initializer=init(9),
                                         bias_initializer=init(10))
        self.sampler = keras.random.SeedGenerator(seed)
        self._types = space.decision_types()
        self._masks = space.masks()
        # Build every weight now so the controller can be saved and restored before first use.
        self._run(tf.zeros((1, space.num_decisions), tf.int64))

    def _head(self, kind):
        return {"input": self.input_head, "op": self.op_head, "combine": self.combine_head}[kind]

    def _run(self, actions=None, batch=None):
        if actions is not None:
            batch = tf.shape(actions)[0]
        state = [tf.zeros((batch, self.units)), tf.zeros((batch, self.units))]
        prev = tf.zeros((batch,), tf.int64)
        chosen, logps, entropies = [], [], []
        for step, kind in enumerate(self._types):
            x = self.embedding(prev) + self.step_embedding(tf.fill((batch,), step))
            h, state = self.lstm(x, state)
            logits = self._head(kind)(h) / self.temperature
            if self.tanh_constant:
                logits = self.tanh_constant * tf.tanh(logits)
            valid = tf.constant(self._masks[step, : logits.shape[-1]])
            logits = tf.where(valid[None, :], logits, -1e9)
            log_p = tf.nn.log_softmax(logits)
            if actions is None:
                a = tf.cast(keras.random.categorical(logits, 1, seed=self.sampler)[:, 0], tf.int64)
            else:
                a = tf.cast(actions[:, step], tf.int64)
            chosen.append(a)
            logps.append(tf.gather(log_p, a, batch_dims=1))
            p = tf.exp(log_p)
            entropies.append(-tf.reduce_sum(tf.where(valid[None, :], p * log_p, 0.0), -1))
            prev = a + self._offsets[kind]
        return tf.stack(chosen, 1), tf.stack(logps, 1), tf.stack(entropies, 1)

    @tf.function(reduce_retracing=True, autograph=False)
    def _sample(self, n):
        return self._run(batch=n)

    def _score_steps(self, actions):
        """Per-decision log-probabilities and entropies ``[n, T]`` of given sequences.

        The same numbers as ``_run(actions)`` (to float rounding), as a much smaller graph: with
        the actions known, every step's input is known at once, so only the LSTM recurrence is
        written out step by step, and each decision type's head, mask, softmax and entropy run
        once over all its steps. Differentiating ``_run`` step by step made a PPO step of 15,000
        graph ops, whose tracing cost every PPO search (and test) about 12 s at its start.
        """
        actions = tf.cast(actions, tf.int64)
        n = tf.shape(actions)[0]
        offsets = tf.constant([self._offsets[k] for k in self._types][:-1], tf.int64)
        prev = tf.concat([tf.zeros((n, 1), tf.int64), actions[:, :-1] + offsets[None, :]], 1)
        # The LSTMCell's own arithmetic (Keras' fused implementation) on its weights.
        # The step embedding looked up once per sequence, as the sampler does: Keras' Adam treats
        # that sparse gradient (IndexedSlices with repeated rows) otherwise than the dense one a
        # broadcast gives, and the PPO updates would drift from those of the sampler's graph.
        steps = tf.tile(tf.range(len(self._types))[None], [n, 1])
        xs = tf.gather(self.embedding.embeddings, prev) + tf.gather(self.step_embedding.embeddings, steps)
        kernel, recurrent, bias = self.lstm.kernel, self.lstm.recurrent_kernel, self.lstm.bias

        def cell(carry, x):
            h, c = carry
            z0, z1, z2, z3 = tf.split(tf.matmul(x, kernel) + tf.matmul(h, recurrent) + bias, 4, axis=1)
            c = tf.sigmoid(z1) * c + tf.sigmoid(z0) * tf.tanh(z2)
            return tf.sigmoid(z3) * tf.tanh(c), c

        zero = tf.zeros((n, self.units))
        hs = tf.transpose(tf.scan(cell, tf.transpose(xs, [1, 0, 2]), (zero, zero))[0], [1, 0, 2])  # [n, T, units]
        logps, entropies, order = [], [], []
        for kind in TYPES:
            steps = [i for i, t in enumerate(self._types) if t == kind]
            if not steps:
                continue
            head = self._head(kind)
            logits = (tf.einsum("ntu,uw->ntw", tf.gather(hs, steps, axis=1), head.kernel) + head.bias) / self.temperature
            if self.tanh_constant:
                logits = self.tanh_constant * tf.tanh(logits)
            valid = tf.constant(self._masks[steps, : logits.shape[-1]])[None]  # [1, steps, width]
            log_p = tf.nn.log_softmax(tf.where(valid, logits, -1e9))
            logps.append(tf.gather(log_p, tf.gather(actions, steps, axis=1), batch_dims=2))
            entropies.append(-tf.reduce_sum(tf.where(valid, tf.exp(log_p) * log_p, 0.0), -1))
            order += steps
        back = np.argsort(order)  # from type-grouped columns back to decision order
        return tf.gather(tf.concat(logps, 1), back, axis=1), tf.gather(tf.concat(entropies, 1), back, axis=1)

    @tf.function(reduce_retracing=True, autograph=False)
    def _score(self, actions):
        return self._score_steps(actions)

    def sample(self, n: int):
        """Samples ``n`` architectures; returns ``(actions [n, T] int64, log_probs [n, T])`` as
        NumPy, the log-probability of every decision taken."""
        a, logp, _ = self._sample(tf.constant(n))
        return a.numpy(), logp.numpy()

    def log_prob(self, actions):
        """Per-decision log-probabilities and entropies ``[n, T]`` of given action sequences, as
        tensors (differentiable with respect to the controller's weights)."""
        return self._score_steps(tf.convert_to_tensor(actions, tf.int64))

    def probability_of(self, actions) -> np.ndarray:
        """Probability of each given action sequence under the current policy."""
        logp, _ = self._score(tf.convert_to_tensor(actions, tf.int64))
        return np.exp(logp.numpy().sum(1))

    def greedy(self) -> np.ndarray:
        """The most likely decision at every step (fed back step by step)."""
        state = [tf.zeros((1, self.units)), tf.zeros((1, self.units))]
        prev = tf.zeros((1,), tf.int64)
        out = []
        for step, kind in enumerate(self._types):
            h, state = self.lstm(self.embedding(prev) + self.step_embedding(tf.constant([step])), state)
            logits = self._head(kind)(h)
            valid = self._masks[step, : logits.shape[-1]]
            a = int(np.argmax(np.where(valid, logits.numpy()[0], -np.inf)))
            out.append(a)
            prev = tf.constant([a + self._offsets[kind]], tf.int64)
        return np.asarray(out)
