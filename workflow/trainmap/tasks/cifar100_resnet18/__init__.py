"""cifar100_resnet18: CIFAR-100 with torchvision's ResNet18 on a CIFAR stem."""
