"""mnist_mlp: MNIST digits with an MLP 784-800-10."""
