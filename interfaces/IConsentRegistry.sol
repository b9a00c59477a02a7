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
    event ConsentRevoked(address indexed patient, address indexed grantee, bytes32 indexed scope);

    /// @notice Emitted when a patient appoints or removes a delegate (guardian).
    event DelegateSet(address indexed patient, address indexed delegate, bool allowed);

    /// @notice Thrown when a grant names the zero address as grantee.
    error ConsentRegistryZeroGrantee();

    /// @notice Thrown when a purposes bitmask is empty or sets a reserved bit.
    error ConsentRegistryInvalidPurposes(uint32 purposes);

    /// @notice Thrown when `expiresAt` is set and is not after both `notBefore` and now.
    error ConsentRegistryInvalidWindow(uint48 notBefore, uint48 expiresAt);

    /// @notice Thrown when `caller` acts for `patient` without being their delegate.
    error ConsentRegistryNotDelegate(address patient, address caller);

    /// @notice Thrown when a patient names the zero address or themselves as delegate.
    error ConsentRegistryInvalidDelegate(address delegate);

    /// @notice Thrown when a signed consent is submitted after its deadline.
    error ConsentRegistryExpiredSignature(uint256 deadline);

    /// @notice Thrown when a signature was not made by `patient` over this exact message.
    error ConsentRegistryInvalidSigner(address patient);

    /// @notice Thrown when revoking a grant that does not exist.
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
    function revoke(address grantee, bytes32 scope) external;

    /// @notice Appoints (`allowed = true`) or removes a delegate who may grant and revoke for the caller.
    function setDelegate(address delegate, bool allowed) external;

    /// @notice As `grant`, by a delegate of `patient`.
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
    function revokeFor(address patient, address grantee, bytes32 scope) external;

    /// @notice As `grant`, authorised by the patient's EIP-712 `Grant` signature and submitted by anyone.
    /// @dev Typed struct: `Grant(address patient,address grantee,bytes32 scope,uint32 purposes,
    /// bool identified,uint48 notBefore,uint48 expiresAt,uint256 nonce,uint256 deadline)`, signed
    /// under the domain ("ConsentRegistry", "1", chainid, this contract). Accepts a 65-byte
    /// (r, s, v) EOA signature (low-s only; no ERC-2098 64-byte form) and anything the patient's
    /// EIP-1271 wallet accepts. Consumes the patient's current nonce.
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
    /// @dev Typed struct: `Revoke(address patient,address grantee,bytes32 scope,uint256 nonce,uint256 deadline)`.
    function revokeBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice The nonce the patient's next signed consent must carry.
    function nonces(address patient) external view returns (uint256);

    /// @notice May `grantee` access study `studyKey` of `patient` for `purpose` (a bit index) now?
    /// @dev Honours a grant scoped to `studyKey` and an all-studies grant. `identified` is true
    /// if any grant that permits allows identified data.
    function isPermitted(address patient, address grantee, bytes32 studyKey, uint8 purpose)
        external
        view
        returns (bool permitted, bool identified);

    /// @notice The stored grant for (patient, grantee, scope); all zero if there is none.
    function getGrant(address patient, address grantee, bytes32 scope) external view returns (Grant memory);

    /// @notice Whether `delegate` may currently grant and revoke for `patient`.
    function isDelegate(address patient, address delegate) external view returns (bool);
}
