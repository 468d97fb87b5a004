namespace JestMesh.Curation;

/// <summary>Which score matrix S a selection maximises (JEST §3.1).</summary>
public enum SelectionPolicy
{
    /// <summary>S = L(learner) − L(reference): the JEST default.</summary>
    Learnability,

    /// <summary>S = L(learner): prefer what the learner finds hard.</summary>
    HardLearner,

    /// <summary>S = −L(reference): prefer what the reference finds easy.</summary>
    EasyReference,

    /// <summary>No scores: a uniform random b-subset (the baseline).</summary>
    Uniform,
}
