namespace JestMesh.Curation;

/// <summary>Factories for the score sources of each policy.</summary>
public static class ScoreSources
{
    /// <summary>Sigmoid (SigLIP) pairwise scores. learner/reference may be null where the policy does not need them (HardLearner: reference; EasyReference: learner; Uniform: both, but then one is needed for N).</summary>
    public static IScoreSource SigmoidContrastive(SelectionPolicy policy, ContrastiveEmbeddings? learner, ContrastiveEmbeddings? reference)
    {
        var (models, signs) = Models(policy, learner, reference);
        return models.Length == 0
            ? new UniformSource((learner ?? reference)!.Count)
            : new SigmoidContrastiveSource(policy, models, signs);
    }

    /// <summary>Softmax (InfoNCE) conditional scores (JEST §A.6); see <see cref="SoftmaxContrastiveSource"/> for the first chunk.</summary>
    /// <remarks>
    /// referenceLosses: the reference's first-pass losses over this super-batch (<see cref="InfoNceLosses.Compute"/> of the reference, e.g.
    /// shipped by Scoring), used instead of computing them, with the same result; null computes them. Ignored by policies without the reference.
    /// </remarks>
    public static IScoreSource SoftmaxContrastive(SelectionPolicy policy, ContrastiveEmbeddings? learner, ContrastiveEmbeddings? reference, InfoNceLosses? referenceLosses = null)
    {
        var (models, signs) = Models(policy, learner, reference);
        if (models.Length == 0)
        {
            return new UniformSource((learner ?? reference)!.Count);
        }

        var firstPass = new InfoNceLosses?[models.Length];
        if (referenceLosses is not null)
        {
            int m = policy switch { SelectionPolicy.Learnability => 1, SelectionPolicy.EasyReference => 0, _ => -1 };
            if (m >= 0)
            {
                if (referenceLosses.Count != reference!.Count)
                {
                    throw new ArgumentException($"referenceLosses has {referenceLosses.Count} examples but reference has {reference.Count}.", nameof(referenceLosses));
                }

                firstPass[m] = referenceLosses;
            }
        }

        return new SoftmaxContrastiveSource(policy, models, Array.ConvertAll(signs, s => (double)s), firstPass);
    }

    /// <summary>
    /// The bound on |u| = |α⟨img, txt⟩| the softmax source works with (|α|·max‖img‖·max‖txt‖, with a little slack for rounding):
    /// <see cref="SoftmaxContrastive"/> refuses a model whose bound is not a finite float32, since it computes u in float32.
    /// </summary>
    public static double SoftmaxLogitBound(ContrastiveEmbeddings model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return SoftmaxContrastiveSource.LogitBound(model);
    }

    /// <summary>Per-example losses (length N each): S is diagonal with S_cc = policy-weighted loss.</summary>
    public static IScoreSource PerExampleLoss(SelectionPolicy policy, float[]? learnerLoss, float[]? referenceLoss)
    {
        CheckPolicy(policy);
        bool needLearner = policy is SelectionPolicy.Learnability or SelectionPolicy.HardLearner;
        bool needReference = policy is SelectionPolicy.Learnability or SelectionPolicy.EasyReference;
        Require(learnerLoss, needLearner, policy, nameof(learnerLoss));
        Require(referenceLoss, needReference, policy, nameof(referenceLoss));
        if (learnerLoss is null && referenceLoss is null)
        {
            throw new ArgumentException("Uniform needs learnerLoss or referenceLoss only to know N; both are null. Use ScoreSources.Uniform(count).", nameof(learnerLoss));
        }

        foreach (var (loss, name) in new[] { (learnerLoss, nameof(learnerLoss)), (referenceLoss, nameof(referenceLoss)) })
        {
            if (loss is not null)
            {
                if (loss.Length == 0)
                {
                    throw new ArgumentException($"{name} is empty (N = 0).", name);
                }

                Validation.RequireFinite(loss, 1, name);
            }
        }

        if (learnerLoss is not null && referenceLoss is not null && learnerLoss.Length != referenceLoss.Length)
        {
            throw new ArgumentException($"referenceLoss has {referenceLoss.Length} values but learnerLoss has {learnerLoss.Length}.", nameof(referenceLoss));
        }

        int n = (learnerLoss ?? referenceLoss)!.Length;
        if (policy == SelectionPolicy.Uniform)
        {
            return new UniformSource(n);
        }

        var diagonal = new double[n];
        for (int i = 0; i < n; i++)
        {
            diagonal[i] = policy switch
            {
                SelectionPolicy.Learnability => (double)learnerLoss![i] - referenceLoss![i],
                SelectionPolicy.HardLearner => learnerLoss![i],
                _ => -(double)referenceLoss![i],
            };
        }

        return new PerExampleLossSource(policy, diagonal);
    }

    /// <summary>An explicit row-major N×N score matrix (O(N²) memory; for small N and tests).</summary>
    public static IScoreSource Dense(float[] matrix, int count)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (count <= 0)
        {
            throw new ArgumentException($"count must be positive, got {count} (empty super-batch).", nameof(count));
        }

        Validation.RequireLength(matrix, (long)count * count, nameof(matrix), $"{count}×{count}");
        Validation.RequireFinite(matrix, count, nameof(matrix));
        return new DenseScoreSource(SelectionPolicy.Learnability, matrix, count);
    }

    /// <summary>The uniform baseline over <paramref name="count"/> examples.</summary>
    public static IScoreSource Uniform(int count)
    {
        if (count <= 0)
        {
            throw new ArgumentException($"count must be positive, got {count} (empty super-batch).", nameof(count));
        }

        return new UniformSource(count);
    }

    private static (ContrastiveEmbeddings[] Models, float[] Signs) Models(SelectionPolicy policy, ContrastiveEmbeddings? learner, ContrastiveEmbeddings? reference)
    {
        CheckPolicy(policy);
        bool needLearner = policy is SelectionPolicy.Learnability or SelectionPolicy.HardLearner;
        bool needReference = policy is SelectionPolicy.Learnability or SelectionPolicy.EasyReference;
        Require(learner, needLearner, policy, nameof(learner));
        Require(reference, needReference, policy, nameof(reference));
        if (learner is null && reference is null)
        {
            throw new ArgumentException("Uniform needs learner or reference only to know N; both are null. Use ScoreSources.Uniform(count).", nameof(learner));
        }

        if (learner is not null && reference is not null)
        {
            if (learner.Count != reference.Count)
            {
                throw new ArgumentException($"reference has {reference.Count} examples but learner has {learner.Count}.", nameof(reference));
            }

            if (learner.Dim != reference.Dim)
            {
                throw new ArgumentException($"reference has dim {reference.Dim} but learner has dim {learner.Dim}.", nameof(reference));
            }
        }

        return policy switch
        {
            SelectionPolicy.Learnability => ([learner!, reference!], [1f, -1f]),
            SelectionPolicy.HardLearner => ([learner!], [1f]),
            SelectionPolicy.EasyReference => ([reference!], [-1f]),
            _ => ([], []),
        };
    }

    private static void CheckPolicy(SelectionPolicy policy)
    {
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentException($"policy {(int)policy} is not a SelectionPolicy.", nameof(policy));
        }
    }

    private static void Require(object? value, bool needed, SelectionPolicy policy, string name)
    {
        if (needed && value is null)
        {
            throw new ArgumentException($"{name} is null but policy {policy} needs it.", name);
        }
    }
}
