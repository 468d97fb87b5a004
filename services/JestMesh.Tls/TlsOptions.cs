using System.ComponentModel.DataAnnotations;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace JestMesh.Tls;

/// <summary>
/// TLS settings of one side of a connection (configuration sub-section "Tls" of Messaging, Trainer and
/// Selection), the same meaning everywhere: <see cref="CertificateFile"/> and <see cref="KeyFile"/> are
/// the certificate this side presents (a client certificate for a client, the serving certificate for
/// a server), and <see cref="CaFile"/> is the CA the peer's certificate must chain to (a client: the
/// server's certificate, instead of the system CAs; a server: every caller must present a client
/// certificate issued by it). All PEM files; empty means not used.
/// </summary>
public sealed class TlsOptions
{
    /// <summary>The sub-section name under a service's section, e.g. "Messaging:Tls".</summary>
    public const string SectionName = "Tls";

    /// <summary>PEM file of the CA certificate(s) the peer's certificate must chain to.</summary>
    public string CaFile { get; set; } = "";

    /// <summary>PEM certificate this side presents (with intermediates after it, if any).</summary>
    public string CertificateFile { get; set; } = "";

    /// <summary>PEM private key of <see cref="CertificateFile"/> (unencrypted: it comes from a Secret volume).</summary>
    public string KeyFile { get; set; } = "";

    public bool HasCa => CaFile.Length > 0;

    public bool HasCertificate => CertificateFile.Length > 0;

    /// <summary>
    /// What is wrong with these settings, as validation results whose member names are
    /// "Tls:CaFile" etc. (the options validation prefixes the service's section): missing or
    /// unreadable files, a file without a certificate, a key that does not match, an expired certificate.
    /// </summary>
    public IEnumerable<ValidationResult> Validate()
    {
        var results = new List<ValidationResult>();
        void Fail(string member, string message) => results.Add(new ValidationResult(message, [$"{SectionName}:{member}"]));
        if (HasCa)
        {
            if (!File.Exists(CaFile))
            {
                Fail(nameof(CaFile), $"'{CaFile}' does not exist.");
            }
            else
            {
                try
                {
                    var cas = LoadCa();
                    if (cas.Count == 0)
                    {
                        Fail(nameof(CaFile), $"'{CaFile}' holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
                    }
                }
                catch (CryptographicException ex)
                {
                    Fail(nameof(CaFile), $"'{CaFile}' is not a PEM certificate file: {ex.Message}");
                }
            }
        }
        if (HasCertificate != (KeyFile.Length > 0))
        {
            Fail(HasCertificate ? nameof(KeyFile) : nameof(CertificateFile),
                HasCertificate ? "must name the PEM private key of CertificateFile." : "must name the PEM certificate of KeyFile.");
        }
        else if (HasCertificate)
        {
            var missing = false;
            foreach (var (member, file) in new[] { (nameof(CertificateFile), CertificateFile), (nameof(KeyFile), KeyFile) })
            {
                if (!File.Exists(file))
                {
                    Fail(member, $"'{file}' does not exist.");
                    missing = true;
                }
            }
            if (!missing)
            {
                try
                {
                    using var certificate = LoadCertificate()!;
                    if (certificate.NotAfter < DateTime.Now)
                    {
                        Fail(nameof(CertificateFile), $"the certificate '{certificate.Subject}' in '{CertificateFile}' expired on {certificate.NotAfter:u}.");
                    }
                }
                catch (CryptographicException ex)
                {
                    Fail(nameof(CertificateFile), $"'{CertificateFile}' with the key '{KeyFile}' is not a PEM certificate and its matching private key: {ex.Message}");
                }
            }
        }
        return results;
    }

    /// <summary>The CA certificates of <see cref="CaFile"/> (empty collection when not set).</summary>
    public X509Certificate2Collection LoadCa()
    {
        var collection = new X509Certificate2Collection();
        if (HasCa)
        {
            collection.ImportFromPemFile(CaFile);
        }
        return collection;
    }

    /// <summary>The certificate of <see cref="CertificateFile"/> with its private key, or null when not set.</summary>
    public X509Certificate2? LoadCertificate() =>
        HasCertificate ? X509Certificate2.CreateFromPemFile(CertificateFile, KeyFile) : null;

    /// <summary>
    /// Configures a client's TLS: presents <see cref="CertificateFile"/> when the server asks for a client
    /// certificate, and accepts the server's certificate only if it names the host and chains to
    /// <see cref="CaFile"/> (the system CAs when not set). A refused server certificate throws
    /// <see cref="UntrustedPeerException"/> naming the problem and <paramref name="section"/>'s setting.
    /// </summary>
    public void ConfigureClient(SslClientAuthenticationOptions ssl, string section)
    {
        ArgumentNullException.ThrowIfNull(ssl);
        var certificate = LoadCertificate();
        if (certificate is not null)
        {
            ssl.ClientCertificates = [certificate];
            // Always this one: a server that lists acceptable issuers must not make the client send nothing.
            ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        }
        ssl.RemoteCertificateValidationCallback = ServerCertificateValidation(section);
    }

    /// <summary>
    /// The server-certificate check of <see cref="ConfigureClient"/> on its own (for clients with their
    /// own TLS options type): true when trusted, else throws <see cref="UntrustedPeerException"/>.
    /// </summary>
    public RemoteCertificateValidationCallback ServerCertificateValidation(string section)
    {
        var roots = HasCa ? LoadCa() : null;
        var caSetting = $"{section}:{SectionName}:{nameof(CaFile)}";
        return (sender, certificate, chain, errors) =>
        {
            var host = sender is SslStream stream ? stream.TargetHostName : "";
            string? problem;
            if (certificate is null)
            {
                problem = "the server presented no certificate";
            }
            else if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
            {
                problem = $"the server's certificate '{certificate.Subject}' is not for the host '{host}' it was reached at (its subject alternative names must include it)";
            }
            else if (roots is null)
            {
                problem = errors == SslPolicyErrors.None ? null
                    : $"the server's certificate '{certificate.Subject}' (issuer '{certificate.Issuer}') is not trusted by the system CAs ({errors}); set {caSetting} to the CA that issued it";
            }
            else
            {
                using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                problem = PeerCertificates.Problem(presented, roots, PeerCertificates.ServerAuthentication, chain?.ChainPolicy.ExtraStore, $"{caSetting} ('{CaFile}')");
            }
            return problem is null ? true : throw new UntrustedPeerException($"TLS to '{host}' refused: {problem}.");
        };
    }

    /// <summary>
    /// Why a client certificate is not accepted by a server whose <see cref="CaFile"/> is set (null: accepted).
    /// <paramref name="section"/> names the server's section in the message.
    /// </summary>
    public string? ClientCertificateProblem(X509Certificate2? presented, X509Certificate2Collection roots, string section)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var caSetting = $"{section}:{SectionName}:{nameof(CaFile)}";
        return presented is null
            ? $"no client certificate: this service requires one issued by the CA in {caSetting}"
            : PeerCertificates.Problem(presented, roots, PeerCertificates.ClientAuthentication, null, $"this service's client CA ({caSetting})");
    }
}

/// <summary>A TLS peer whose certificate is not trusted: a configuration problem, not worth retrying.</summary>
public sealed class UntrustedPeerException : System.Security.Authentication.AuthenticationException
{
    public UntrustedPeerException() : base("the TLS peer's certificate is not trusted") { }

    public UntrustedPeerException(string message) : base(message) { }

    public UntrustedPeerException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The first <see cref="UntrustedPeerException"/> in <paramref name="exception"/>'s inner exceptions (aggregates included), or null.</summary>
    public static UntrustedPeerException? Find(Exception? exception)
    {
        while (exception is not null)
        {
            if (exception is UntrustedPeerException untrusted)
            {
                return untrusted;
            }
            if (exception is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    if (Find(inner) is { } found)
                    {
                        return found;
                    }
                }
                return null;
            }
            exception = exception.InnerException;
        }
        return null;
    }
}
