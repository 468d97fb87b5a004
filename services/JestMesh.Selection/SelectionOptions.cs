using System.ComponentModel.DataAnnotations;
using JestMesh.Tls;

namespace JestMesh.Selection;

/// <summary>Settings of the Selection service (configuration section "Selection").</summary>
public sealed class SelectionOptions : IValidatableObject
{
    public const string SectionName = "Selection";

    /// <summary>The credential every RPC except health must present as "authorization: Bearer KEY" (from a Secret in k8s).</summary>
    [Required]
    [MinLength(16)]
    public string ApiKey { get; set; } = "";

    /// <summary>
    /// TLS of the gRPC endpoint: CertificateFile and KeyFile, the serving certificate (used by every
    /// https:// endpoint); CaFile, when set, the CA whose client certificates callers must present
    /// (every RPC but health; others get UNAUTHENTICATED). The API key is required either way.
    /// </summary>
    public TlsOptions Tls { get; set; } = new();

    /// <summary>Largest gRPC message the service accepts (learner scores of a super-batch), bytes.</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public int MaxReceiveMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest gRPC message the service sends (a candidate super-batch), bytes.</summary>
    [Range(64 * 1024, 1024 * 1024 * 1024)]
    public int MaxSendMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>HTTP/2 keepalive: a ping after this much idle time on a connection.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>HTTP/2 keepalive: the connection is closed when a ping is not answered within this.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Scored super-batches one job's consumer holds unacked (shared by that job's sessions).</summary>
    [Range(1, 10_000)]
    public int JobPrefetch { get; set; } = 16;

    /// <summary>Candidates a Curate session keeps in flight ahead of the learner (2 = the next one is always there).</summary>
    [Range(1, 16)]
    public int CandidatesAhead { get; set; } = 2;

    /// <summary>Curated batches a learner-free Curate session sends ahead of the client's acks.</summary>
    [Range(1, 64)]
    public int BatchesAhead { get; set; } = 2;

    /// <summary>
    /// How long an open waits for a job that does not exist yet (no scored super-batch of it arrived)
    /// before NOT_FOUND, and for the first super-batch of a job before `opened` goes out with N = 0.
    /// 30 s: the demo starts the Trainer and Ingest together, and Ingest's first super-batch must
    /// still pass Scoring.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan UnknownJobWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Streams (Curate or StreamBatches) attached to one job at once; more are RESOURCE_EXHAUSTED.</summary>
    [Range(1, 10_000)]
    public int MaxSessionsPerJob { get; set; } = 64;

    /// <summary>Jobs this replica serves (each holds a consumer and up to JobPrefetch super-batches); more are RESOURCE_EXHAUSTED.</summary>
    [Range(1, 100_000)]
    public int MaxJobs { get; set; } = 1000;

    /// <summary>
    /// Largest request header block Kestrel accepts (both Limits.MaxRequestHeadersTotalSize and
    /// Http2.MaxRequestHeaderFieldSize). Below it an oversized credential is UNAUTHENTICATED; above
    /// it HTTP/2 has no per-request answer and Kestrel closes the connection.
    /// </summary>
    [Range(32 * 1024, 16 * 1024 * 1024)]
    public int MaxRequestHeaderBytes { get; set; } = 1024 * 1024;

    /// <summary>Name of the durable batch log (a RabbitMQ stream); default "{Messaging:QueuePrefix}.selection.log".</summary>
    [RegularExpression("^[A-Za-z0-9_.-]{0,200}$")]
    public string LogStream { get; set; } = "";

    /// <summary>Retention of the batch log (x-max-age); sessions older than this cannot be resumed.</summary>
    [RegularExpression("^[0-9]+[YMDhms]$")]
    public string LogMaxAge { get; set; } = "7D";

    /// <summary>
    /// A session with no stream attached for this long is dropped from memory; a resume rebuilds it
    /// from the batch log. 10 min: a trainer that restarts (a pod rescheduled, a preemption, a
    /// reconnect) is back well within it and resumes from memory; one gone longer pays one read of
    /// the log from the session's start, and idle sessions stop holding memory (about 2.5 KB each by their fields; not measured).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "7.00:00:00")]
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (KeepAlivePingTimeout > KeepAlivePingDelay * 10)
        {
            yield return new ValidationResult("must not exceed ten times KeepAlivePingDelay.", [nameof(KeepAlivePingTimeout)]);
        }
        if (Tls.HasCa && !Tls.HasCertificate)
        {
            yield return new ValidationResult("asks callers for client certificates, which needs TLS: set Selection:Tls:CertificateFile and KeyFile (the serving certificate) and listen on https://.", ["Tls:CaFile"]);
        }
        foreach (var problem in Tls.Validate())
        {
            yield return problem;
        }
    }
}
