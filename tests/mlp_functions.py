"""An MLP training loss kept in its own module, so that the `# file:LINE` comments of
its generated step (and so tests/golden/mlp_step.py) do not move when tests change."""
from runtime import nn


def mlp_loss(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)
