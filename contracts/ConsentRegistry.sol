// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";

/// @title ConsentRegistry
/// @notice Patients grant, update and revoke access to their imaging studies: directly, through a
/// delegate (guardian), or by an EIP-712 signature that anyone may relay.
/// @dev Every change emits an event, so the full history can be rebuilt from logs alone. The
/// trust model and the `isPermitted` rule are documented in IConsentRegistry. Signed messages are
/// ordered by their `issuedAt` against the slot they change, not by a per-patient nonce: there is
/// no nonce slot to write, and a patient's signatures for different slots never block each other.
contract ConsentRegistry is IConsentRegistry, EIP712 {
    /// @dev A delegate's current delegation. Two slots: `scope` (32 bytes); `expiresAt` and `id`,
    /// 6 + 4 = 10 bytes. `expiresAt == 0` once removed.
    struct Delegation {
        bytes32 scope;
        uint48 expiresAt;
        uint32 id;
    }

    /// @notice The scope meaning "all of the patient's studies".
    bytes32 public constant ALL_STUDIES = bytes32(0);

    /// @notice The purpose bits a grant may set; any other bit is reserved and rejected.
    /// @dev Bits 0..6: TREAT, ETREAT, HRESCH, PATRQT, HPAYMT, HOPERAT, PUBHLTH.
    uint32 public constant KNOWN_PURPOSES = 0x7f;

    /// @notice The longest a signed message may stay usable: `deadline - issuedAt`.
    uint48 public constant MAX_SIGNATURE_LIFETIME = 30 days;

    // The EIP-712 type strings are fixed by the signed format (the Python client signs the same
    // types) and are hashed at compile time, so their length costs no gas at run time.
    /* solhint-disable gas-small-strings */

    /// @notice EIP-712 type hash of the `Grant` message that `grantBySig` accepts.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,bytes32 scope,uint32 purposes,bool identified,"
        "uint48 notBefore,uint48 expiresAt,uint48 issuedAt,uint256 deadline)"
    );

    /// @notice EIP-712 type hash of the `Revoke` message that `revokeBySig` accepts.
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)");

    /// @notice EIP-712 type hash of the `Cancel` message that `cancelBySig` accepts.
    bytes32 public constant CANCEL_TYPEHASH =
        keccak256("Cancel(address patient,address grantee,bytes32 scope,uint48 issuedAt,uint256 deadline)");

    /* solhint-enable gas-small-strings */

    /// @dev Key: keccak256(abi.encode(patient, grantee, scope)). One slot per grant:
    /// 4 + 1 + 6 + 6 + 6 + 4 = 27 bytes.
    mapping(bytes32 grantKey => Grant) private _grants;
    mapping(address patient => mapping(address delegate => Delegation)) private _delegations;
    /// @dev Expiry of each delegation id while it is its delegate's current one; 0 once removed or
    /// replaced. `isPermitted` reads it for a delegate's grant: one slot.
    mapping(address patient => mapping(uint32 delegation => uint48 expiresAt)) private _delegationExpiry;
    mapping(address patient => uint32 count) private _delegationCount;
    mapping(address patient => mapping(bytes32 studyKey => bool)) private _excluded;

    /// @notice Deploys the registry under the EIP-712 domain ("ConsentRegistry", "2").
    constructor() EIP712("ConsentRegistry", "2") {}

    /// @inheritdoc IConsentRegistry
    function grant(
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external {
        _checkTerms(grantee, purposes, notBefore, expiresAt);
        _grants[_grantKey(msg.sender, grantee, scope)] =
            Grant(purposes, identified, notBefore, expiresAt, uint48(block.timestamp), 0);
        emit ConsentGranted(msg.sender, grantee, scope, purposes, identified, notBefore, expiresAt);
    }

    /// @inheritdoc IConsentRegistry
    function revoke(address grantee, bytes32 scope) external {
        _tombstone(msg.sender, grantee, scope, uint48(block.timestamp));
    }

    /// @inheritdoc IConsentRegistry
    function cancelSignatures(address grantee, bytes32 scope) external {
        _cancel(msg.sender, grantee, scope, uint48(block.timestamp));
    }

    /// @inheritdoc IConsentRegistry
    function setExclusion(bytes32 studyKey, bool excluded) external {
        if (studyKey == ALL_STUDIES) revert ConsentRegistryInvalidStudyKey();
        _excluded[msg.sender][studyKey] = excluded;
        emit ExclusionSet(msg.sender, studyKey, excluded);
    }

    /// @inheritdoc IConsentRegistry
    function setDelegate(address delegate, bytes32 scope, uint48 expiresAt) external {
        if (delegate == address(0) || delegate == msg.sender) revert ConsentRegistryInvalidDelegate(delegate);
        if (expiresAt != 0 && expiresAt <= block.timestamp) revert ConsentRegistryInvalidWindow(0, expiresAt);
        Delegation storage d = _delegations[msg.sender][delegate];
        uint32 previous = d.id;
        if (previous != 0) delete _delegationExpiry[msg.sender][previous];
        uint32 id = ++_delegationCount[msg.sender];
        if (expiresAt != 0) _delegationExpiry[msg.sender][id] = expiresAt;
        d.scope = scope;
        d.expiresAt = expiresAt;
        d.id = id;
        emit DelegateSet(msg.sender, delegate, scope, expiresAt, id);
    }

    /// @inheritdoc IConsentRegistry
    function grantFor(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external {
        (uint32 id, uint48 delegationExpiresAt) = _activeDelegation(patient, scope);
        if (grantee == msg.sender) revert ConsentRegistrySelfGrant(msg.sender);
        if (expiresAt == 0 || expiresAt > delegationExpiresAt) {
            revert ConsentRegistryOutsideDelegation(scope, expiresAt, delegationExpiresAt);
        }
        _checkTerms(grantee, purposes, notBefore, expiresAt);
        _grants[_grantKey(patient, grantee, scope)] =
            Grant(purposes, identified, notBefore, expiresAt, uint48(block.timestamp), id);
        emit ConsentGranted(patient, grantee, scope, purposes, identified, notBefore, expiresAt);
        emit DelegateActed(patient, msg.sender, id);
    }

    /// @inheritdoc IConsentRegistry
    function revokeFor(address patient, address grantee, bytes32 scope) external {
        (uint32 id,) = _activeDelegation(patient, scope);
        _tombstone(patient, grantee, scope, uint48(block.timestamp));
        emit DelegateActed(patient, msg.sender, id);
    }

    /// @inheritdoc IConsentRegistry
    function grantBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        Grant memory g = Grant(purposes, identified, notBefore, expiresAt, issuedAt, 0);
        _checkTimes(issuedAt, deadline);
        _checkSignature(patient, _hashGrant(patient, grantee, scope, g, deadline), signature);
        bytes32 key = _grantKey(patient, grantee, scope);
        uint48 current = _grants[key].issuedAt;
        if (issuedAt <= current) revert ConsentRegistrySupersededSignature(issuedAt, current);
        _checkTerms(grantee, purposes, notBefore, expiresAt);
        _grants[key] = g;
        emit ConsentGranted(patient, grantee, scope, purposes, identified, notBefore, expiresAt);
        emit SignatureUsed(patient, grantee, scope, issuedAt, msg.sender);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        _checkTimes(issuedAt, deadline);
        _checkSignature(patient, _hashSlotMessage(REVOKE_TYPEHASH, patient, grantee, scope, issuedAt, deadline), signature);
        Grant memory current = _grants[_grantKey(patient, grantee, scope)];
        // Ties favour revocation: a live grant made in the same second as the signature is revoked.
        bool applies = current.purposes != 0 ? issuedAt >= current.issuedAt : issuedAt > current.issuedAt;
        if (applies) {
            _tombstone(patient, grantee, scope, issuedAt);
            emit SignatureUsed(patient, grantee, scope, issuedAt, msg.sender);
        } else {
            emit SignatureSuperseded(patient, grantee, scope, issuedAt);
        }
    }

    /// @inheritdoc IConsentRegistry
    function cancelBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint48 issuedAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        _checkTimes(issuedAt, deadline);
        _checkSignature(patient, _hashSlotMessage(CANCEL_TYPEHASH, patient, grantee, scope, issuedAt, deadline), signature);
        if (issuedAt > _grants[_grantKey(patient, grantee, scope)].issuedAt) {
            _cancel(patient, grantee, scope, issuedAt);
            emit SignatureUsed(patient, grantee, scope, issuedAt, msg.sender);
        } else {
            emit SignatureSuperseded(patient, grantee, scope, issuedAt);
        }
    }

    /// @inheritdoc IConsentRegistry
    function isPermitted(address patient, address grantee, bytes32 studyKey, uint8 purpose)
        external
        view
        returns (bool permitted, bool identified)
    {
        // A shift by 32 or more yields 0 for uint32, so an unknown purpose is never permitted.
        uint32 bit = uint32(1) << purpose;
        if (studyKey != ALL_STUDIES) {
            Grant memory study = _grants[_grantKey(patient, grantee, studyKey)];
            if (_inForce(patient, study)) return _decide(study, bit);
            if (_excluded[patient][studyKey]) return (false, false);
        }
        Grant memory all = _grants[_grantKey(patient, grantee, ALL_STUDIES)];
        if (_inForce(patient, all)) return _decide(all, bit);
        return (false, false);
    }

    /// @inheritdoc IConsentRegistry
    function getGrant(address patient, address grantee, bytes32 scope) external view returns (Grant memory) {
        return _grants[_grantKey(patient, grantee, scope)];
    }

    /// @inheritdoc IConsentRegistry
    function getDelegation(address patient, address delegate)
        external
        view
        returns (bytes32 scope, uint48 expiresAt, uint32 delegation)
    {
        Delegation memory d = _delegations[patient][delegate];
        if (d.expiresAt <= block.timestamp) return (bytes32(0), 0, 0);
        return (d.scope, d.expiresAt, d.id);
    }

    /// @inheritdoc IConsentRegistry
    function isExcluded(address patient, bytes32 studyKey) external view returns (bool) {
        return _excluded[patient][studyKey];
    }

    /// @dev Writes a tombstone: the slot keeps only `issuedAt`. One slot write, no read needed.
    function _tombstone(address patient, address grantee, bytes32 scope, uint48 issuedAt) internal {
        Grant storage g = _grants[_grantKey(patient, grantee, scope)];
        g.purposes = 0;
        g.identified = false;
        g.notBefore = 0;
        g.expiresAt = 0;
        g.issuedAt = issuedAt;
        g.delegation = 0;
        emit ConsentRevoked(patient, grantee, scope);
    }

    /// @dev Raises the slot's `issuedAt`, terms unchanged.
    function _cancel(address patient, address grantee, bytes32 scope, uint48 issuedAt) internal {
        _grants[_grantKey(patient, grantee, scope)].issuedAt = issuedAt;
        emit SignaturesCancelled(patient, grantee, scope, issuedAt);
    }

    /// @dev The caller's delegation from `patient`, if active and covering `scope`.
    function _activeDelegation(address patient, bytes32 scope) internal view returns (uint32 id, uint48 expiresAt) {
        Delegation memory d = _delegations[patient][msg.sender];
        if (d.expiresAt <= block.timestamp || (d.scope != ALL_STUDIES && d.scope != scope)) {
            revert ConsentRegistryNotDelegate(patient, msg.sender);
        }
        return (d.id, d.expiresAt);
    }

    /// @dev Accepts a 65-byte ECDSA signature by `patient` (OpenZeppelin `ECDSA.tryRecover`: low-s
    /// only, v 27 or 28), otherwise asks `patient` as an EIP-1271 wallet (OpenZeppelin
    /// `SignatureChecker.isValidERC1271SignatureNow`). Trying ECDSA first skips the cold
    /// EXTCODESIZE (2,600 gas) of `SignatureChecker.isValidSignatureNow` on the common EOA path.
    /// No contract address has a known private key, so this accepts exactly what the code-size
    /// dispatch accepts.
    function _checkSignature(address patient, bytes32 structHash, bytes calldata signature) internal view {
        bytes32 digest = _hashTypedDataV4(structHash);
        if (signature.length == 65) {
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
            if (err == ECDSA.RecoverError.NoError && recovered == patient) return;
        }
        if (!SignatureChecker.isValidERC1271SignatureNow(patient, digest, signature)) {
            revert ConsentRegistryInvalidSigner(patient);
        }
    }

    /// @dev The checks every signed message passes before its signature is checked.
    function _checkTimes(uint48 issuedAt, uint256 deadline) internal view {
        if (block.timestamp > deadline) revert ConsentRegistryExpiredSignature(deadline);
        if (issuedAt > block.timestamp) revert ConsentRegistrySignatureFromFuture(issuedAt);
        if (deadline > uint256(issuedAt) + MAX_SIGNATURE_LIFETIME) {
            revert ConsentRegistrySignatureLifetimeTooLong(issuedAt, deadline);
        }
    }

    /// @dev The checks every grant's terms pass, whoever makes it.
    function _checkTerms(address grantee, uint32 purposes, uint48 notBefore, uint48 expiresAt) internal view {
        if (grantee == address(0)) revert ConsentRegistryZeroGrantee();
        if (purposes == 0 || purposes & ~KNOWN_PURPOSES != 0) revert ConsentRegistryInvalidPurposes(purposes);
        if (expiresAt != 0 && (expiresAt <= notBefore || expiresAt <= block.timestamp)) {
            revert ConsentRegistryInvalidWindow(notBefore, expiresAt);
        }
    }

    /// @dev Whether a stored grant is in force now (see the `isPermitted` rule).
    function _inForce(address patient, Grant memory g) internal view returns (bool) {
        if (g.purposes == 0 || block.timestamp < g.notBefore) return false;
        if (g.expiresAt != 0 && block.timestamp >= g.expiresAt) return false;
        return g.delegation == 0 || block.timestamp < _delegationExpiry[patient][g.delegation];
    }

    /// @dev EIP-712 struct hash of a `Grant` message. Kept apart from `grantBySig` to stay within the stack.
    function _hashGrant(address patient, address grantee, bytes32 scope, Grant memory g, uint256 deadline)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                patient,
                grantee,
                scope,
                g.purposes,
                g.identified,
                g.notBefore,
                g.expiresAt,
                g.issuedAt,
                deadline
            )
        );
    }

    /// @dev EIP-712 struct hash of a `Revoke` or `Cancel` message (same fields, different type hash).
    function _hashSlotMessage(
        bytes32 typeHash,
        address patient,
        address grantee,
        bytes32 scope,
        uint48 issuedAt,
        uint256 deadline
    ) internal pure returns (bytes32) {
        return keccak256(abi.encode(typeHash, patient, grantee, scope, issuedAt, deadline));
    }

    /// @dev The deciding grant's answer: identified only together with permitted.
    function _decide(Grant memory g, uint32 bit) internal pure returns (bool permitted, bool identified) {
        permitted = g.purposes & bit != 0;
        identified = permitted && g.identified;
    }

    function _grantKey(address patient, address grantee, bytes32 scope) internal pure returns (bytes32) {
        return keccak256(abi.encode(patient, grantee, scope));
    }
}
