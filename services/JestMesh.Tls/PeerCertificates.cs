using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace JestMesh.Tls;

/// <summary>Chain checks of a peer's certificate against a private CA (no system roots involved).</summary>
public static class PeerCertificates
{
    /// <summary>Extended key usage "TLS Web Server Authentication".</summary>
    public static Oid ServerAuthentication => new("1.3.6.1.5.5.7.3.1");

    /// <summary>Extended key usage "TLS Web Client Authentication".</summary>
    public static Oid ClientAuthentication => new("1.3.6.1.5.5.7.3.2");

    /// <summary>
    /// Null when <paramref name="certificate"/> chains to one of <paramref name="roots"/> (through
    /// <paramref name="intermediates"/> if needed), is in its validity period and allowed for
    /// <paramref name="usage"/>; else a sentence saying what is wrong, naming <paramref name="trustName"/>.
    /// Revocation is not checked (a private CA here publishes no CRL).
    /// </summary>
    public static string? Problem(X509Certificate2 certificate, X509Certificate2Collection roots, Oid usage, X509Certificate2Collection? intermediates, string trustName)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(roots);
        ArgumentNullException.ThrowIfNull(usage);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(usage);
        if (intermediates is not null)
        {
            chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        }
        try
        {
            if (chain.Build(certificate))
            {
                return null;
            }
            var statuses = chain.ChainStatus.Aggregate(X509ChainStatusFlags.NoError, (all, s) => all | s.Status);
            var what = $"the certificate '{certificate.Subject}' (issuer '{certificate.Issuer}')";
            if ((statuses & (X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain)) != 0)
            {
                var cas = string.Join("; ", roots.Select(r => $"'{r.Subject}'"));
                return $"{what} does not chain to {trustName}, which holds {cas}";
            }
            if ((statuses & X509ChainStatusFlags.NotTimeValid) != 0)
            {
                return $"{what} or its CA is outside its validity period (the certificate: {certificate.NotBefore:u} to {certificate.NotAfter:u})";
            }
            if ((statuses & (X509ChainStatusFlags.NotValidForUsage | X509ChainStatusFlags.InvalidExtension)) != 0)
            {
                return $"{what} is not valid for {usage.FriendlyName ?? usage.Value} (its extended key usage)";
            }
            return $"{what} is not trusted by {trustName}: {string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())}";
        }
        finally
        {
            foreach (var element in chain.ChainElements)
            {
                if (!ReferenceEquals(element.Certificate, certificate))
                {
                    element.Certificate.Dispose();
                }
            }
        }
    }
}
