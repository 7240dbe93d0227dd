import numpy as np

rows = np.arange(5)
ones = np.ones(5)


def mlp_loss_step(W1, b1, W2, b2, W3, b3, velocity_W1, velocity_b1, velocity_W2, velocity_b2, velocity_W3, velocity_b3, lr, momentum, weight_decay, x, y):
    z1 = x @ W1 + b1  # nn.py:153 via mlp_functions.py:7
    a1 = np.maximum(z1, 0)  # nn.py:156 via mlp_functions.py:7
    z2 = a1 @ W2 + b2  # nn.py:153 via mlp_functions.py:7
    a2 = np.maximum(z2, 0)  # nn.py:156 via mlp_functions.py:7
    logits = a2 @ W3 + b3  # nn.py:153 via mlp_functions.py:7
    shift = logits.max(axis=1, keepdims=True)  # mlp_functions.py:7
    exps = np.exp(logits - shift)  # mlp_functions.py:7
    sums = exps.sum(axis=1, keepdims=True)  # mlp_functions.py:7
    loss = (shift[:, 0] - logits[rows, y] + np.log(sums[:, 0])).sum() / 5  # mlp_functions.py:7
    # grad of: mlp_functions.py:7  return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)
    g_logits = exps / (sums * 5)
    g_logits[rows, y] -= 0.2
    # grad of: nn.py:153 via mlp_functions.py:7  z = h @ params[f"W{i}"] + params[f"b{i}"]
    g_b3 = ones @ g_logits
    g_a2 = g_logits @ W3.T
    g_W3 = a2.T @ g_logits
    # grad of: nn.py:156 via mlp_functions.py:7  h = activation(z)
    g_z2 = g_a2 * (a2 > 0)
    # grad of: nn.py:153 via mlp_functions.py:7  z = h @ params[f"W{i}"] + params[f"b{i}"]
    g_b2 = ones @ g_z2
    g_a1 = g_z2 @ W2.T
    g_W2 = a1.T @ g_z2
    # grad of: nn.py:156 via mlp_functions.py:7  h = activation(z)
    g_z1 = g_a1 * (a1 > 0)
    # grad of: nn.py:153 via mlp_functions.py:7  z = h @ params[f"W{i}"] + params[f"b{i}"]
    g_b1 = ones @ g_z1
    g_W1 = x.T @ g_z1
    velocity_W1 *= momentum  # optim.py:116
    velocity_W1 += g_W1  # optim.py:116
    velocity_b1 *= momentum  # optim.py:116
    velocity_b1 += g_b1  # optim.py:116
    velocity_W2 *= momentum  # optim.py:116
    velocity_W2 += g_W2  # optim.py:116
    velocity_b2 *= momentum  # optim.py:116
    velocity_b2 += g_b2  # optim.py:116
    velocity_W3 *= momentum  # optim.py:116
    velocity_W3 += g_W3  # optim.py:116
    velocity_b3 *= momentum  # optim.py:116
    velocity_b3 += g_b3  # optim.py:116
    W1 -= lr * velocity_W1  # optim.py:121
    b1 -= lr * velocity_b1  # optim.py:121
    W2 -= lr * velocity_W2  # optim.py:121
    b2 -= lr * velocity_b2  # optim.py:121
    W3 -= lr * velocity_W3  # optim.py:121
    b3 -= lr * velocity_b3  # optim.py:121
    return loss
