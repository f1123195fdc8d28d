r"""Train M1 on MNIST at one batch size.

Run (about 20 s/epoch on 2 CPU cores for the full 60k set; seconds on mnist5k):
  python -m tf_hessian.train --config=tf_hessian/configs/m1_mnist.py \
      --config.data.data_dir=/data/mnist --config.batch_size=512 --workdir=runs/m1_b512

Differences from `default`: M1 (LeNet-5 style, spec §2, layer list unverified), MNIST,
lr 0.01, 20 epochs, decays at 10 and 15. Use `--config.data.name=mnist5k` to train on the
embedded 5,000-image subset without any download.
"""

from tf_hessian.configs import default


def get_config(variant: str = ""):
    c = default.get_config()
    c.model = "m1"
    c.data.name = "mnist"
    c.optimizer.learning_rate = 0.01
    c.optimizer.lr_decay_epochs = (10, 15)
    c.epochs = 20
    c.eval.fgsm_epsilon = 0.1
    if variant == "mnist5k":
        c.data.name = "mnist5k"
    elif variant:
        raise ValueError(f"Unknown config variant {variant!r}; use '' or 'mnist5k'.")
    return c
