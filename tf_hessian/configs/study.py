r"""The paper's large-batch / robustness experiment at CPU scale (M1 on embedded MNIST-5k).

Run (not timed at the current defaults, 8 configurations x 3 seeds at 12 epochs; the 4-epoch
demo's 18 models below took 918 s, so expect well over 10 minutes on 2 CPU cores):
  python -m tf_hessian.study --config=tf_hessian/configs/study.py --workdir=runs/hessian_study
  # real data: --config.train.data.name=mnist --config.train.data.data_dir=/data/mnist

For each batch size (16 ... 2048, two orders of magnitude, large batches emulated by
accumulating 128-example micro-batches) and each seed, M1 is trained for the same number of
epochs with the same learning rate; then, on the same fixed 1,000 training examples,
lambda_max (Lanczos, residual <= 1e-3 |lambda|), the Hutchinson trace and an SLQ run
(density, top-k Ritz values, lambda_min) are computed, and test / FGSM / PGD accuracy and
DeepFool's rho_adv on the held-out images. The same model is also trained robustly (half of
every micro-batch replaced by FGSM examples) at `robust_batch_sizes` for every radius in
`robust_epsilons`. Output: study.md (table), study.json, study.png and
comparison plots. Expected: see the table in docs/tf_hessian.md.

CIFAR presets (`c1_cifar10`, `c2_cifar10`, `resnet20_cifar10`, `c1_cifar100`,
`resnet20_cifar100`, see configs/cifar.py) run the same study on the paper's networks:
  python -m tf_hessian.study --config=tf_hessian/configs/study.py:c1_cifar10 \
      --config.train.data.data_dir=/data/cifar --workdir=runs/study_c1

Variants: `demo` (3 sizes + 2 robust radii, 2 seeds, 4 epochs: 10 models, measured 1,054 s at
load 7-14 on 2 shared cores; with --config.seeds='(0,1,2)' --config.robust_epsilons='(0.05,0.1,0.2)'
18 models, measured 918 s at load 7 falling to 3), `report` (the `make demo` section: 4 models, B = 16,
256, 2048 and B = 256 robust, one seed, 2 epochs, smaller analysis sizes), `smoke` (tests).
"""

import ml_collections

from tf_hessian.configs import analyze, cifar, m1_mnist


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
    c.robust_epsilons = (0.05, 0.1, 0.2)  # FGSM radii of robust training ([0, 1] pixel units)
    c.seeds = (0, 1, 2)  # every model is trained once per seed; the table shows mean ± sd
    # Robustness to attacks other than the FGSM of robust training, on the eval split.
    c.evaluation = ml_collections.ConfigDict(
        dict(pgd_steps=10, pgd_step_fraction=0.25, rho_adv_examples=200, deepfool_max_iter=50)
    )
    c.analysis = analyze.get_config()
    c.analysis.top_n = 1
    c.analysis.lambda_min = False  # taken from the SLQ run instead
    c.analysis.trace_max_iter = 30
    # Hutchinson probes per batched HVP (HessianOperator.hvp_flat_batch); the samples are those
    # of block_size 1, a block cut short by the stopping test wastes its remaining products.
    c.analysis.hvp_block_size = 5
    c.analysis.density_num_iter = 30
    c.analysis.landscape_points = 21
    c.analysis.landscape_radius = 0.5
    c.spectrum_top_k = 5  # Ritz values of the SLQ run shown in the spectrum plot
    if variant == "demo":
        c.batch_sizes = (16, 256, 2048)
        c.robust_epsilons = (0.05, 0.1)
        c.seeds = (0, 1)
        c.train.epochs = 4
        c.train.optimizer.lr_decay_epochs = (3,)
        c.train.eval.limit = 500
        c.analysis.num_examples = 500
        c.analysis.max_iter = 40
        c.analysis.trace_max_iter = 15
        c.analysis.density_num_iter = 20
        c.analysis.input_examples = 50
        c.evaluation.rho_adv_examples = 100
    elif variant == "report":
        # The `make demo` section (tf_hessian/demo.py): the `demo` study's sizes and analysis with
        # one seed and one robust radius (4 models: B = 16, 256, 2048 and B = 256 robust).
        # Smaller than `demo` in sizes only (epochs, examples, iterations), every measure kept.
        c = get_config("demo")
        c.seeds = (0,)
        c.robust_epsilons = (0.1,)
        c.train.epochs = 2
        c.train.optimizer.lr_decay_epochs = (1.5,)
        c.train.eval.limit = 300
        c.analysis.num_examples = 128
        c.analysis.max_iter = 20
        c.analysis.trace_max_iter = 10
        c.analysis.density_num_iter = 15
        c.analysis.landscape_points = 11
        c.analysis.input_examples = 10
        c.evaluation.pgd_steps = 5
        c.evaluation.rho_adv_examples = 32
        c.evaluation.deepfool_max_iter = 20
    elif variant in cifar.PRESETS:
        # The paper's CIFAR networks (needs --config.train.data.data_dir); full schedules.
        c.train = cifar.get_config(variant)
        c.train.checkpoint_every = 1000
        c.train.export = False
        c.batch_sizes = (128, 512, 2048, 8192)
        c.robust_batch_sizes = (512,)
        c.robust_epsilons = (0.005, 0.01, 0.02)  # ABSA's 0.005 and two larger radii
        c.train.robust.adv_ratio = 0.2
        c.train.eval.fgsm_epsilon = 0.02
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
        c.batch_sizes = (16,)
        c.robust_batch_sizes = (16,)
        c.robust_epsilons = (0.1,)
        c.seeds = (0,)
        c.evaluation.pgd_steps = 2
        c.evaluation.rho_adv_examples = 8
        c.evaluation.deepfool_max_iter = 5
        c.analysis = analyze.get_config("smoke")
        c.analysis.top_n = 1
        c.analysis.lambda_min = False
        c.analysis.block_analysis = False
        c.spectrum_top_k = 2
    elif variant:
        raise ValueError(
            f"Unknown config variant {variant!r}; use '', 'demo', 'report', 'smoke' or one of "
            f"{cifar.PRESETS}."
        )
    return c
