using JestMesh.Data;
using JestMesh.Models;
using static TorchSharp.torch;

namespace JestMesh.Cli.InProcess;

/// <summary>The reference's pair loss −log σ(α⟨x_i, t_i⟩ + β) per pair: how the web-like pool ranks pairs from easiest to hardest.</summary>
internal static class ReferencePairLosses
{
    /// <summary>The pool builder's loss function for the checkpoint in <paramref name="referenceDirectory"/> (SHA-256 checked on load).</summary>
    public static ReferencePairLoss Of(string referenceDirectory) => (pairs, images) =>
    {
        var (model, _) = ModelCheckpoint.Load(referenceDirectory, CPU);
        using (model)
        {
            using var tensors = new PairTensors(pairs, images);
            using var scope = NewDisposeScope();
            var (img, txt) = model.EmbedTensors(tensors.Images, tensors.Tokens, 1024);
            var logits = img.mul(txt).sum(1).mul(model.Alpha).add(model.Beta);
            var loss = nn.functional.logsigmoid(logits).neg();
            return TensorConvert.ToArray(loss).Select(v => (double)v).ToArray();
        }
    };
}
