// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsentRegistry
/// @notice Patients' grants of access to their imaging studies.
/// @dev A grant is keyed by (patient, grantee, scope). `scope` is an opaque study key
/// (`keccak256(sitePepper ‖ StudyInstanceUID)`, computed off chain) or `ALL_STUDIES`
/// (`bytes32(0)`) for every study of the patient. No personal data is ever stored or emitted.
///
/// Purposes are a bitmask over HL7 v3 PurposeOfUse codes (bit index: code):
///   0 TREAT   treatment
///   1 ETREAT  emergency treatment
///   2 HRESCH  healthcare research
///   3 PATRQT  patient requested
///   4 HPAYMT  healthcare payment
///   5 HOPERAT healthcare operations
///   6 PUBHLTH public health
/// Higher bits are reserved and rejected.
interface IConsentRegistry {
    /// @notice One grant. Fits in one storage slot: 4 + 1 + 6 + 6 = 17 bytes.
    /// @param purposes Bitmask of permitted purposes; a stored grant always has at least one bit.
    /// @param identified True if identified data may be released; false means de-identified only.
    /// @param notBefore First second (unix time) at which the grant applies.
    /// @param expiresAt First second at which the grant no longer applies; 0 means no expiry.
    struct Grant {
        uint32 purposes;
        bool identified;
        uint48 notBefore;
        uint48 expiresAt;
    }

    /// @notice Emitted when a grant is created or replaced.
    /// @param patient The patient whose studies the grant covers.
    /// @param grantee The account allowed access.
    /// @param scope The study key, or `ALL_STUDIES` (`bytes32(0)`) for all of the patient's studies.
    /// @param purposes Bitmask of permitted PurposeOfUse bits.
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies.
    /// @param expiresAt Unix time at which the grant ends; 0 means never.
    event ConsentGranted(
        address indexed patient,
        address indexed grantee,
        bytes32 indexed scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    );

    /// @notice Emitted when a grant is revoked.
    /// @param patient The patient whose grant was revoked.
    /// @param grantee The account that loses access.
    /// @param scope The study key, or `ALL_STUDIES`, of the revoked grant.
    event ConsentRevoked(address indexed patient, address indexed grantee, bytes32 indexed scope);

    // Not indexed on purpose: these fields are read with the event, never searched by, and
    // indexing them would change the event ABI that the audit indexer decodes.
    /* solhint-disable gas-indexed-events */
    /// @notice Emitted when a patient appoints or removes a delegate (guardian).
    /// @param patient The patient the delegate acts for.
    /// @param delegate The appointed or removed account.
    /// @param allowed True if appointed, false if removed.
    event DelegateSet(address indexed patient, address indexed delegate, bool allowed);
    /* solhint-enable gas-indexed-events */

    /// @notice Thrown when a grant names the zero address as grantee.
    error ConsentRegistryZeroGrantee();

    /// @notice Thrown when a purposes bitmask is empty or sets a reserved bit.
    /// @param purposes The rejected bitmask.
    error ConsentRegistryInvalidPurposes(uint32 purposes);

    /// @notice Thrown when `expiresAt` is set and is not after both `notBefore` and now.
    /// @param notBefore The requested start of the grant.
    /// @param expiresAt The requested end of the grant.
    error ConsentRegistryInvalidWindow(uint48 notBefore, uint48 expiresAt);

    /// @notice Thrown when `caller` acts for `patient` without being their delegate.
    /// @param patient The patient the caller tried to act for.
    /// @param caller The account that is not the patient's delegate.
    error ConsentRegistryNotDelegate(address patient, address caller);

    /// @notice Thrown when a patient names the zero address or themselves as delegate.
    /// @param delegate The rejected delegate.
    error ConsentRegistryInvalidDelegate(address delegate);

    /// @notice Thrown when a signed consent is submitted after its deadline.
    /// @param deadline The signed deadline (unix time), already past.
    error ConsentRegistryExpiredSignature(uint256 deadline);

    /// @notice Thrown when a signature was not made by `patient` over this exact message.
    /// @param patient The patient the signature was checked against.
    error ConsentRegistryInvalidSigner(address patient);

    /// @notice Thrown when revoking a grant that does not exist.
    /// @param patient The patient named in the revocation.
    /// @param grantee The grantee named in the revocation.
    /// @param scope The scope named in the revocation.
    error ConsentRegistryGrantNotFound(address patient, address grantee, bytes32 scope);

    /// @notice Grants `grantee` access to the caller's studies in `scope`, replacing any
    /// existing grant for the same (caller, grantee, scope).
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `bytes32(0)` for all of the caller's studies.
    /// @param purposes Bitmask of PurposeOfUse bits (see the contract notes).
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends (0 = never).
    function grant(
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external;

    /// @notice Revokes the caller's grant to `grantee` for `scope`.
    /// @dev Reverts with `ConsentRegistryGrantNotFound` if there is no such grant.
    /// @param grantee The account whose access ends.
    /// @param scope The scope of the grant: a study key, or `bytes32(0)` for all studies.
    function revoke(address grantee, bytes32 scope) external;

    /// @notice Appoints (`allowed = true`) or removes a delegate who may grant and revoke for the caller.
    /// @param delegate The guardian's account; not the zero address and not the caller.
    /// @param allowed True to appoint, false to remove.
    function setDelegate(address delegate, bool allowed) external;

    /// @notice As `grant`, by a delegate of `patient`.
    /// @dev Caller must be a delegate of `patient` (`ConsentRegistryNotDelegate` otherwise).
    /// @param patient The patient the caller acts for.
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `bytes32(0)` for all of the patient's studies.
    /// @param purposes Bitmask of PurposeOfUse bits (see the contract notes).
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends (0 = never).
    function grantFor(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external;

    /// @notice As `revoke`, by a delegate of `patient`.
    /// @dev Caller must be a delegate of `patient` (`ConsentRegistryNotDelegate` otherwise).
    /// @param patient The patient the caller acts for.
    /// @param grantee The account whose access ends.
    /// @param scope The scope of the grant: a study key, or `bytes32(0)` for all studies.
    function revokeFor(address patient, address grantee, bytes32 scope) external;

    /// @notice As `grant`, authorised by the patient's EIP-712 `Grant` signature and submitted by anyone.
    /// @dev Typed struct: `Grant(address patient,address grantee,bytes32 scope,uint32 purposes,
    /// bool identified,uint48 notBefore,uint48 expiresAt,uint256 nonce,uint256 deadline)`, signed
    /// under the domain ("ConsentRegistry", "1", chainid, this contract). Accepts a 65-byte
    /// (r, s, v) EOA signature (low-s only; no ERC-2098 64-byte form) and anything the patient's
    /// EIP-1271 wallet accepts. Consumes the patient's current nonce.
    /// @param patient The patient who signed, and whose studies the grant covers.
    /// @param grantee The account allowed access.
    /// @param scope A study key, or `bytes32(0)` for all of the patient's studies.
    /// @param purposes Bitmask of PurposeOfUse bits (see the contract notes).
    /// @param identified True if identified data may be released.
    /// @param notBefore Unix time from which the grant applies (0 = now).
    /// @param expiresAt Unix time at which the grant ends (0 = never).
    /// @param deadline Last unix time at which the signature may be submitted.
    /// @param signature The patient's signature: 65 bytes (r, s, v), or what their EIP-1271 wallet accepts.
    function grantBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice As `revoke`, authorised by the patient's EIP-712 `Revoke` signature.
    /// @dev Typed struct: `Revoke(address patient,address grantee,bytes32 scope,uint256 nonce,uint256 deadline)`,
    /// under the same domain and with the same signature rules as `grantBySig`. Consumes the
    /// patient's current nonce.
    /// @param patient The patient who signed, and whose grant is revoked.
    /// @param grantee The account whose access ends.
    /// @param scope The scope of the grant: a study key, or `bytes32(0)` for all studies.
    /// @param deadline Last unix time at which the signature may be submitted.
    /// @param signature The patient's signature: 65 bytes (r, s, v), or what their EIP-1271 wallet accepts.
    function revokeBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice The nonce the patient's next signed consent must carry.
    /// @param patient The patient.
    /// @return The patient's current nonce.
    function nonces(address patient) external view returns (uint256);

    /// @notice May `grantee` access study `studyKey` of `patient` for `purpose` (a bit index) now?
    /// @dev Honours a grant scoped to `studyKey` and an all-studies grant. `identified` is true
    /// if any grant that permits allows identified data.
    /// @param patient The patient whose study is asked for.
    /// @param grantee The account asking.
    /// @param studyKey The study's opaque key.
    /// @param purpose PurposeOfUse bit index (0..6); any other value is never permitted.
    /// @return permitted Whether a grant permits the access now.
    /// @return identified Whether a permitting grant allows identified data.
    function isPermitted(address patient, address grantee, bytes32 studyKey, uint8 purpose)
        external
        view
        returns (bool permitted, bool identified);

    /// @notice The stored grant for (patient, grantee, scope); all zero if there is none.
    /// @param patient The patient.
    /// @param grantee The grantee.
    /// @param scope A study key, or `bytes32(0)` for the all-studies grant.
    /// @return The grant as stored (it may have expired or not yet started).
    function getGrant(address patient, address grantee, bytes32 scope) external view returns (Grant memory);

    /// @notice Whether `delegate` may currently grant and revoke for `patient`.
    /// @param patient The patient.
    /// @param delegate The account asked about.
    /// @return True if `delegate` is the patient's delegate.
    function isDelegate(address patient, address delegate) external view returns (bool);
}
