"""Search strategies: the paper's PPO-trained controller, and uniform random search.

Both share one interface: ``propose(n)`` returns ``n`` (actions, log-probability) pairs and
``observe(actions, logp, reward)`` reports a finished child; ``state()`` / ``restore()`` carry
everything needed to resume.

Choices the paper leaves open, and the values used here (see docs/search.md):

* the PPO ratio is taken per decision (each of the 50 decisions is a step of an episode whose
  return is the child's reward), not for the whole sequence: a sequence ratio is a product of 50
  per-decision ratios, leaves the clip range after tiny per-decision changes, and so clips nearly
  every sample after the first gradient step;
* clip ratio 0.2 and Adam (the optimiser NNI's PPO and ENAS use);
* the advantage is ``reward - baseline`` (EMA 0.95, the paper's), divided by the batch's standard
  deviation of rewards, so the step size does not depend on the reward's scale;
* ``epochs`` gradient passes over each batch of 20;
* the entropy bonus is the mean entropy per decision, weighed against advantages of unit scale.
  The paper uses 1e-5, but at that weight the policy turns deterministic before it
  has found every decision: measured on the synthetic reward, 20,000 children end 45-47 of 50
  decisions right in most seeds. A constant 0.05 keeps undecided choices alive while decided ones
  still converge (a correct choice is worth about one unit of advantage, far more than 0.05), and
  reached the exact NASNet-A cells in every seed tried (``search/synthetic/``), so it is
  :class:`PPOConfig`'s default (``PPOConfig.preset("paper")`` has 1e-5); schedules that decay
  the bonus to 0 collapse again once it is small.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf

from .config import PPOConfig  # defined without TensorFlow; re-exported here
from .controller import Controller
from .space import SearchSpace


class PPOStrategy:
    """The paper's controller trained with PPO on child rewards (appendix A.2 / A.3)."""

    name = "ppo"

    def __init__(self, space: SearchSpace, config: PPOConfig | None = None, seed: int = 0):
        self.space = space
        self.config = config or PPOConfig()
        c = self.config
        keras.utils.set_random_seed(seed)
        self.controller = Controller(space, units=c.units, temperature=c.temperature,
                                     tanh_constant=c.tanh_constant, seed=seed)
        self.optimizer = keras.optimizers.Adam(c.lr)
        self.optimizer.build(self.controller.trainable_variables)
        self.baseline: float | None = None
        self.scale = 1.0
        self.buffer: list[tuple[list[int], float, float]] = []
        self.observed = 0
        self.updates = 0

    def propose(self, n: int):
        """Samples ``n`` architectures; returns ``(actions, per-decision log-probabilities)`` pairs."""
        actions, logp = self.controller.sample(n)
        return [(a.tolist(), [round(float(x), 6) for x in lp]) for a, lp in zip(actions, logp)]

    def observe(self, actions, logp, reward: float) -> bool:
        """Buffers a finished child; runs a PPO update when a batch is full. Returns whether it did."""
        self.buffer.append((list(actions), list(logp), float(reward)))
        self.observed += 1
        if len(self.buffer) < self.config.batch_size:
            return False
        batch, self.buffer = self.buffer, []
        self.update([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch])
        return True

    def _scheduled(self, start: float, end: float | None) -> float:
        if end is None:
            return start
        t = min(1.0, self.observed / max(1, self.config.total_trials))
        return start + t * (end - start)

    def entropy_weight(self) -> float:
        """The entropy bonus now (constant, or linear from ``entropy_weight`` to ``entropy_final``)."""
        return self._scheduled(self.config.entropy_weight, self.config.entropy_final)

    def learning_rate(self) -> float:
        """The learning rate now (constant, or linear from ``lr`` to ``lr_final``)."""
        return self._scheduled(self.config.lr, self.config.lr_final)

    def update(self, actions, old_logp, rewards) -> dict:
        """One PPO update (clipped surrogate, EMA baseline, entropy bonus) on a batch."""
        c = self.config
        rewards = np.asarray(rewards, np.float32)
        if self.baseline is None:
            self.baseline = float(rewards.mean())
            self.scale = float(rewards.std())
        adv = rewards - self.baseline
        if c.normalize_advantages:
            # A running (EMA) scale rather than this batch's spread: once the policy concentrates,
            # a batch's spread shrinks and dividing by it would blow noise up into large steps.
            self.scale = c.baseline_decay * self.scale + (1 - c.baseline_decay) * float(rewards.std())
            adv = adv / (self.scale + 1e-8)
        self.baseline = c.baseline_decay * self.baseline + (1 - c.baseline_decay) * float(rewards.mean())
        self.optimizer.learning_rate.assign(self.learning_rate())
        info = self._step(tf.constant(np.asarray(actions, np.int64)),
                          tf.constant(np.asarray(old_logp, np.float32)),
                          tf.constant(adv.astype(np.float32)),
                          tf.constant(self.entropy_weight(), tf.float32))
        self.updates += 1
        return {k: float(v) for k, v in info.items()}

    @tf.function(reduce_retracing=True)
    def _step(self, actions, old_logp, adv, ent_w):
        c = self.config
        loss = tf.constant(0.0)
        ent = tf.constant(0.0)
        for _ in tf.range(c.epochs):  # a graph loop: one traced step, not `epochs` copies
            with tf.GradientTape() as tape:
                logp, entropy = self.controller.log_prob(actions)
                ratio = tf.exp(logp - old_logp)  # [n, T]: one ratio per decision
                a = adv[:, None]
                surrogate = tf.minimum(ratio * a, tf.clip_by_value(ratio, 1 - c.clip, 1 + c.clip) * a)
                ent = tf.reduce_mean(entropy)  # per decision
                loss = -tf.reduce_mean(surrogate) - ent_w * ent
            grads = tape.gradient(loss, self.controller.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.controller.trainable_variables))
        return {"loss": loss, "entropy": ent}

    def state(self) -> dict:
        """Every variable of controller and optimiser (incl. the sampler's state), and counters."""
        arrays = {f"c{i}": np.asarray(v.numpy()) for i, v in enumerate(self.controller.variables)}
        arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        arrays["meta"] = np.asarray(json.dumps({
            "baseline": self.baseline, "scale": self.scale, "buffer": self.buffer, "observed": self.observed,
            "updates": self.updates,
        }))
        return arrays

    def restore(self, arrays) -> None:
        """Restores :meth:`state` output."""
        for i, v in enumerate(self.controller.variables):
            v.assign(arrays[f"c{i}"])
        for i, v in enumerate(self.optimizer.variables):
            v.assign(arrays[f"o{i}"])
        meta = json.loads(str(arrays["meta"]))
        self.baseline = meta["baseline"]
        self.scale = meta["scale"]
        self.buffer = [tuple(b) for b in meta["buffer"]]
        self.observed = meta["observed"]
        self.updates = meta["updates"]


class RandomStrategy:
    """Uniform sampling among valid choices: the paper's random-search baseline."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.observed = 0
        self._logp = [round(-float(x), 6) for x in np.log(space.num_choices())]

    def propose(self, n: int):
        """``n`` uniform samples (with their per-decision log-probabilities)."""
        return [(a.tolist(), self._logp) for a in self.space.sample_uniform(self.rng, n)]

    def observe(self, actions, logp, reward) -> bool:
        """Counts the result; random search does not learn."""
        self.observed += 1
        return False

    def state(self) -> dict:
        """The generator state."""
        return {"meta": np.asarray(json.dumps({"rng": self.rng.bit_generator.state,
                                               "observed": self.observed}))}

    def restore(self, arrays) -> None:
        """Restores :meth:`state` output."""
        meta = json.loads(str(arrays["meta"]))
        self.rng.bit_generator.state = meta["rng"]
        self.observed = meta["observed"]
