using System.Text.RegularExpressions;
using JestMesh.Curation;

namespace JestMesh.Protos.V1;

/// <summary>Job names: they become queue names, so only a safe alphabet and a bounded length.</summary>
public static partial class JobNames
{
    /// <summary>The pattern every job name matches.</summary>
    [GeneratedRegex("^[A-Za-z0-9_.-]{1,100}$")]
    public static partial Regex Pattern();

    public static bool IsValid(string? job) => job is not null && Pattern().IsMatch(job);
}

/// <summary>
/// Checks of a SessionOpen that no retry can fix. Failures throw <see cref="InvalidDataException"/>
/// naming the field as "{field}.name" (for example "open.chunks"); client text in the messages is
/// bounded and escaped (<see cref="ClientText"/>).
/// </summary>
public sealed partial class SessionOpen
{
    /// <summary>True when this opens a new session (no session_id).</summary>
    public bool IsNew => SessionId.Length == 0;

    /// <summary>The loss with LOSS_KIND_UNSPECIFIED read as LOSS_KIND_SIGMOID (its documented meaning).</summary>
    public LossKind EffectiveLoss => Loss == LossKind.Unspecified ? LossKind.Sigmoid : Loss;

    /// <summary>
    /// Checks the request on its own: a new session's settings, or a resume's id and cursor.
    /// <paramref name="learnerFree"/> is true for StreamBatches (the policy must need no learner).
    /// </summary>
    /// <exception cref="InvalidDataException">A field out of range, named.</exception>
    public void Validate(string field, bool learnerFree)
    {
        if (!IsNew)
        {
            if (SessionId.Length > 64 || !JobNames.IsValid(SessionId))
            {
                // Not a session id this service hands out (32 hex digits); NOT_FOUND would invite retries.
                throw new InvalidDataException($"{field}.session_id {ClientText.Quote(SessionId)} is not a session id.");
            }
            if (Cursor < 0)
            {
                throw new InvalidDataException($"{field}.cursor {Cursor} must be ≥ 0.");
            }
            if (Job.Length > 0 && !JobNames.IsValid(Job))
            {
                throw new InvalidDataException($"{field}.job {ClientText.Quote(Job)} must match {JobNames.Pattern()}.");
            }
            // Settings given on a resume are compared with the session's (ValidateResume); the enums
            // must still be values this version knows.
            CheckEnums(field, allowUnspecified: true);
            return;
        }
        if (!JobNames.IsValid(Job))
        {
            throw new InvalidDataException($"{field}.job {ClientText.Quote(Job)} must match {JobNames.Pattern()}.");
        }
        CheckEnums(field, allowUnspecified: false);
        var policy = Policy.ToSelectionPolicy();
        if (learnerFree && Policies.NeedsLearner(policy))
        {
            throw new InvalidDataException($"{field}.policy {Policy} needs the learner's scores: use Curate, or EASY_REFERENCE / UNIFORM here.");
        }
        if (!SuperBatchSizing.IsValidRatio(FilterRatio))
        {
            throw new InvalidDataException($"{field}.filter_ratio {FilterRatio} must be in [0, 1).");
        }
        if (Chunks < 1)
        {
            throw new InvalidDataException($"{field}.chunks {Chunks} must be ≥ 1.");
        }
        if (!double.IsFinite(Gain) || Gain < 0)
        {
            throw new InvalidDataException($"{field}.gain {Gain} must be finite and ≥ 0.");
        }
        if (EffectiveLoss == LossKind.PerExample && Policies.NeedsReference(policy))
        {
            throw new InvalidDataException($"{field}.loss PER_EXAMPLE with policy {Policy} needs the reference's per-example losses, which scored super-batches do not carry: use LOSS_KIND_SIGMOID.");
        }
        if (Cursor != 0)
        {
            throw new InvalidDataException($"{field}.cursor {Cursor} needs {field}.session_id: a new session starts at 0.");
        }
    }

    /// <summary>
    /// Checks a resume against the settings the session was opened with: every field this request
    /// sets (non-zero, non-empty, not UNSPECIFIED, greedy true) must equal the session's; unset
    /// fields mean "as the session". A resume cannot change what the session selects.
    /// </summary>
    /// <exception cref="InvalidDataException">The first field that differs, named.</exception>
    public void ValidateResume(SessionOpen session, string field)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (Job.Length > 0 && Job != session.Job)
        {
            Differs(field, "job", ClientText.Quote(Job), ClientText.Quote(session.Job));
        }
        if (Policy != Policy.Unspecified && Policy != session.Policy)
        {
            Differs(field, "policy", Policy, session.Policy);
        }
        if (FilterRatio != 0 && FilterRatio != session.FilterRatio)
        {
            Differs(field, "filter_ratio", FilterRatio, session.FilterRatio);
        }
        if (Chunks != 0 && Chunks != session.Chunks)
        {
            Differs(field, "chunks", Chunks, session.Chunks);
        }
        if (Gain != 0 && Gain != session.Gain)
        {
            Differs(field, "gain", Gain, session.Gain);
        }
        if (Seed != 0 && Seed != session.Seed)
        {
            Differs(field, "seed", Seed, session.Seed);
        }
        if (Loss != LossKind.Unspecified && EffectiveLoss != session.EffectiveLoss)
        {
            Differs(field, "loss", Loss, session.EffectiveLoss);
        }
        if (Greedy && !session.Greedy)
        {
            Differs(field, "greedy", true, false);
        }
    }

    private void CheckEnums(string field, bool allowUnspecified)
    {
        if (!(allowUnspecified && Policy == Policy.Unspecified) && !Policy.TryToSelectionPolicy(out _))
        {
            throw new InvalidDataException($"{field}.policy must be one of LEARNABILITY, HARD_LEARNER, EASY_REFERENCE, UNIFORM (got {Policy}).");
        }
        if (!Enum.IsDefined(Loss))
        {
            throw new InvalidDataException($"{field}.loss must be one of LOSS_KIND_SIGMOID, LOSS_KIND_PER_EXAMPLE, LOSS_KIND_SOFTMAX (or unspecified, read as sigmoid); got {Loss}.");
        }
    }

    private void Differs<T>(string field, string name, T requested, T recorded) =>
        throw new InvalidDataException($"{field}.{name} {requested} differs from {recorded} of session {SessionId}: a resume cannot change the session's settings (leave it unset, or open a new session).");
}

/// <summary>Decoding of the learner's scores into plain arrays; failures name the field.</summary>
public sealed partial class LearnerScores
{
    /// <summary>
    /// The learner's image and text embeddings, float32 [<paramref name="n"/>, <paramref name="dim"/>],
    /// finite, and α, β finite. (Row norms are the curation core's check.)
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor missing, of the wrong dtype or shape, or with NaN/∞; named "{field}.image_embeddings" etc.</exception>
    public (float[] Image, float[] Text) DecodeEmbeddings(int n, int dim, string field = "scores")
    {
        var image = Decode(ImageEmbeddings, $"{field}.image_embeddings", n, dim);
        var text = Decode(TextEmbeddings, $"{field}.text_embeddings", n, dim);
        if (!float.IsFinite(Alpha) || !float.IsFinite(Beta))
        {
            throw new InvalidDataException($"{field}.alpha/beta = {Alpha}/{Beta} must be finite.");
        }
        return (image, text);
    }

    /// <summary>The learner's per-example losses, float32 [<paramref name="n"/>], finite.</summary>
    /// <exception cref="InvalidDataException">Missing, wrong dtype or shape, or NaN/∞; named "{field}.per_example_losses".</exception>
    public float[] DecodeLosses(int n, string field = "scores") => Decode(PerExampleLosses, $"{field}.per_example_losses", n);

    private static float[] Decode(Tensor? tensor, string name, params long[] shape)
    {
        if (tensor is null)
        {
            throw new InvalidDataException($"{name} is missing; the session's policy needs it.");
        }
        var values = tensor.ToFloat32(name, shape);
        if (!Tensor.AllFinite(values))
        {
            throw new InvalidDataException($"{name} contains NaN or infinity.");
        }
        return values;
    }
}
