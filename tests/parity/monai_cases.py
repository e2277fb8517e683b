"""MONAI's loss test cases, copied verbatim (inputs, arguments, expected values).

Source: Project-MONAI/MONAI at 1.5.0 (commit d388d1c6fec8cb3a0eebee5b5a0b9776ca59ca83),
tests/losses/test_dice_loss.py, test_generalized_dice_loss.py, test_tversky_loss.py and
test_masked_dice_loss.py, each list ``TEST_CASES``. Case names are the index in that list
(``TEST_CASES[0]`` ... as MONAI's ``parameterized.expand`` numbers them). ``other_act`` is
kept as the name of the activation ("tanh", "log_softmax") so that the list is data.
"""

import torch

# shared inputs of the (2, 2, 3) cases
X23 = torch.tensor([[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
Y23 = torch.tensor([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])
X_ONEHOT = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
Y_ONEHOT = torch.tensor([[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])
X1 = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
Y1 = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
X2 = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]])
Y2 = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]])
X2_ZERO = torch.tensor([[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]])
SOFT = torch.tensor([[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]])

DICE = [  # tests/losses/test_dice_loss.py TEST_CASES
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, 0.307576),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.416657),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True}, SOFT, SOFT, 0.0),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False}, SOFT, SOFT, 0.307773),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0}, X_ONEHOT, Y_ONEHOT, 0.0),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.435050),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "none", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, [[[0.296529], [0.415136]], [[0.599976], [0.428559]]]),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.383713),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, 1.534853),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, 0.307576),
    ({"include_background": True, "sigmoid": True, "squared_pred": True}, X1, Y1, 0.178337),
    ({"include_background": True, "sigmoid": True, "jaccard": True}, X1, Y1, 0.470451),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.999963),
    ({"include_background": True, "to_onehot_y": True, "other_act": "log_softmax", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, -8.522593),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 1e-4, "smooth_dr": 1e-4, "batch": True},
     X2_ZERO, Y2, 0.774718),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 0, "smooth_dr": 1e-4, "batch": True},
     X2_ZERO, Y2, 0.774733),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 0, "smooth_dr": 1e-4, "batch": False},
     X2_ZERO, Y2, 0.840058),
    ({"include_background": True, "to_onehot_y": True, "other_act": "log_softmax", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4, "weight": (0, 1)}, X23, Y23, -8.268515),
]

GENERALIZED_DICE = [  # tests/losses/test_generalized_dice_loss.py TEST_CASES
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, 0.307576),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.416597),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True}, SOFT, SOFT, 0.0),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False}, SOFT, SOFT, 0.307748),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 0.0, "smooth_dr": 0.0}, X_ONEHOT, Y_ONEHOT,
     0.0),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.469964),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.414507),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, 0.829015),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "none", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, [[[0.273476]], [[0.555539]]]),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 1e-8, "smooth_dr": 1e-8}, X_ONEHOT,
     torch.tensor([[[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]]), 0.0),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, 0.307576),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "w_type": "simple", "smooth_nr": 0,
      "smooth_dr": 0}, torch.tensor([[[0.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]]]),
     torch.tensor([[[1, 1, 0, 0]]]), 0.250023),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.99970),
    ({"include_background": True, "to_onehot_y": True, "other_act": "log_softmax", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, -0.097833),
]

TVERSKY = [  # tests/losses/test_tversky_loss.py TEST_CASES (asserted there with rtol=1e-4)
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, 0.307576),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.416657),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": True}, SOFT, SOFT, 0.0),
    ({"include_background": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "soft_label": False}, SOFT, SOFT, 0.307773),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0}, X_ONEHOT, Y_ONEHOT, 0.0),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 1e-3}, X_ONEHOT, Y_ONEHOT,
     0.000999),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.435050),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "batch": True}, X23, Y23, 0.422979),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "sum", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, 1.74013),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, 0.383713),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "none", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, [[0.210961, 0.295339], [0.599952, 0.428547]]),
    ({"include_background": True, "sigmoid": True, "alpha": 0.3, "beta": 0.7, "smooth_nr": 1e-6,
      "smooth_dr": 1e-6}, X1, Y1, 0.3589),
    ({"include_background": True, "sigmoid": True, "alpha": 0.7, "beta": 0.3, "smooth_nr": 1e-6,
      "smooth_dr": 1e-6}, X1, Y1, 0.247366),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2, 0.999963),
    ({"include_background": True, "other_act": "tanh", "smooth_nr": 0, "smooth_dr": 1e-3, "batch": True}, X2, Y2,
     0.999963),
    ({"include_background": True, "to_onehot_y": True, "other_act": "log_softmax", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, -8.533317),
]

MASKED_DICE = [  # tests/losses/test_masked_dice_loss.py TEST_CASES: (args, input, target, mask, expected)
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1,
     torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]]), 0.500),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, X2, Y2,
     torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]]), 0.422969),
    ({"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0}, X_ONEHOT, Y_ONEHOT,
     torch.tensor([[[1.0, 1.0, 1.0]], [[0.0, 1.0, 0.0]]]), 0.0),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, torch.tensor([[[1.0, 1.0, 0.0]]]), 0.47033),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "none", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, None, [[[0.296529], [0.415136]], [[0.599976], [0.428559]]]),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
     X23, Y23, None, 0.383713),
    ({"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "sum", "smooth_nr": 1e-4,
      "smooth_dr": 1e-4}, X23, Y23, None, 1.534853),
    ({"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, X1, Y1, None, 0.307576),
    ({"include_background": True, "sigmoid": True, "squared_pred": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5},
     X1, Y1, None, 0.178337),
    ({"include_background": True, "sigmoid": True, "jaccard": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5},
     X1, Y1, None, 0.470451),
]
