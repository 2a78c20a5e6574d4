"""Networks and the ELECTRA objective: embeddings, encoders, heads, masking, pretrainer."""

from electra_tf.modeling.activations import gelu_exact
from electra_tf.modeling.discriminator import ElectraDiscriminator
from electra_tf.modeling.dropout import FastDropout
from electra_tf.modeling.embeddings import ElectraEmbeddings, GdesTokenEmbedding
from electra_tf.modeling.encoder import ElectraEncoder
from electra_tf.modeling.heads import ReplacedTokenDetectionHead, masked_lm_head
from electra_tf.modeling.masking import mask_tokens, scatter_max_at_positions
from electra_tf.modeling.pretrainer import ElectraPretrainer
from electra_tf.modeling.sampling import gumbel_max_sample
