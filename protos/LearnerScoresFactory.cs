using JestMesh.Curation;

namespace JestMesh.Protos.V1;

public sealed partial class LearnerScores
{
    /// <summary>
    /// A learner's sigmoid-loss view of candidate <paramref name="superBatchId"/> as the Curate stream
    /// carries it: image and text embeddings [N, d], α and β, and the step that produced them.
    /// </summary>
    public static LearnerScores Of(string superBatchId, ContrastiveEmbeddings view, long learnerStep)
    {
        ArgumentNullException.ThrowIfNull(view);
        return new LearnerScores
        {
            SuperBatchId = superBatchId,
            ImageEmbeddings = Tensor.FromFloat32(view.Image.Span, view.Count, view.Dim),
            TextEmbeddings = Tensor.FromFloat32(view.Text.Span, view.Count, view.Dim),
            Alpha = view.Alpha,
            Beta = view.Beta,
            LearnerStep = learnerStep,
        };
    }
}
