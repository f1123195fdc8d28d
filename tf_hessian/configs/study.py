r"""The paper's large-batch / robustness experiment at CPU scale (M1 on embedded MNIST-5k).

Run (about 10 minutes on 2 idle CPU cores):
  python -m tf_hessian.study --config=tf_hessian/configs/study.py --workdir=runs/hessian_study
  # real data: --config.train.data.name=mnist --config.train.data.data_dir=/data/mnist

For each batch size (16 ... 2048, two orders of magnitude, large batches emulated by
accumulating 128-example micro-batches) M1 is trained for the same number of epochs with
the same learning rate; then, on the same fixed 1,000 training examples, lambda_max (power
iteration, 100 / 1e-3), the Hutchinson trace and an SLQ run (density, top-k Ritz values,
lambda_min) are computed, and test / FGSM accuracy on the 1,000 held-out images. The same
model is also trained robustly (half of every micro-batch replaced by FGSM examples,
eps = 0.1) at `robust_batch_sizes`. Output: study.md (table), study.json, study.png and
comparison plots. Expected: see the table in docs/tf_hessian.md.

Variants: `demo` (~2-3 minutes: 3 sizes + 1 robust, fewer epochs), `smoke` (tests).
"""

import ml_collections

from tf_hessian.configs import analyze, m1_mnist


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.train = m1_mnist.get_config("mnist5k")
    c.train.epochs = 12
    c.train.optimizer.learning_rate = 0.02
    c.train.optimizer.weight_decay = 5e-4
    c.train.optimizer.lr_decay_epochs = (8,)
    c.train.micro_batch_size = 128
    c.train.eval.fgsm_epsilon = 0.1
    c.train.eval.batch_size = 500
    c.train.robust.epsilon = 0.1
    c.train.robust.adv_ratio = 0.5
    c.train.robust.stop_fraction = 1.0
    c.train.checkpoint_every = 100000  # only the final checkpoint
    c.train.summary_every = 10
    c.train.log_every = 0
    c.train.export = False
    c.batch_sizes = (16, 64, 256, 1024, 2048)
    c.robust_batch_sizes = (256,)
    c.analysis = analyze.get_config()
    c.analysis.top_n = 1
    c.analysis.lambda_min = False  # taken from the SLQ run instead
    c.analysis.trace_max_iter = 30
    c.analysis.density_num_iter = 30
    c.analysis.landscape_points = 21
    c.analysis.landscape_radius = 0.5
    c.spectrum_top_k = 5  # Ritz values of the SLQ run shown in the spectrum plot
    if variant == "demo":
        c.batch_sizes = (16, 256, 2048)
        c.train.epochs = 4
        c.train.optimizer.lr_decay_epochs = (3,)
        c.analysis.num_examples = 500
        c.analysis.max_iter = 40
        c.analysis.trace_max_iter = 15
        c.analysis.density_num_iter = 20
    elif variant == "smoke":
        c.train = m1_mnist.get_config("mnist5k")
        c.train.model = "mlp"
        c.train.model_kwargs = ml_collections.ConfigDict(dict(hidden_units=(8,)))
        c.train.data.name = "digits"
        c.train.data.train_limit = 64
        c.train.num_steps = 1
        c.train.micro_batch_size = 8
        c.train.robust.epsilon = 0.1
        c.train.eval.limit = 32
        c.train.eval.batch_size = 16
        c.train.log_every = 0
        c.train.export = False
        c.batch_sizes = (4, 16)
        c.robust_batch_sizes = (16,)
        c.analysis = analyze.get_config("smoke")
        c.analysis.top_n = 1
        c.analysis.lambda_min = False
        c.analysis.block_analysis = False
        c.spectrum_top_k = 2
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '', 'demo' or 'smoke'.")
    return c
